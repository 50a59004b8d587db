"""Every name keras-har takes from keras-hub's private API (`keras_hub.src`).

keras-hub exports no preset-loader protocol publicly; these are the pieces
keras-har builds on, checked with the keras-hub versions pinned in
pyproject.toml. A keras-hub release that moves them is adapted here, and
nowhere else imports `keras_hub.src`.
"""

from keras_hub.src.utils import preset_utils as hub_preset_utils
from keras_hub.src.utils.transformers import convert_vit as transformers_convert_vit

# The preset registry and file helpers.
BUILTIN_PRESETS = hub_preset_utils.BUILTIN_PRESETS
KAGGLE_PREFIX = hub_preset_utils.KAGGLE_PREFIX
check_config_class = hub_preset_utils.check_config_class
find_subclass = hub_preset_utils.find_subclass
get_file = hub_preset_utils.get_file
load_json = hub_preset_utils.load_json
register_presets = hub_preset_utils.register_presets
# The loader protocol (`load_backbone`, `load_task`, ...) and its Keras-format loader.
PresetLoader = hub_preset_utils.PresetLoader
KerasPresetLoader = hub_preset_utils.KerasPresetLoader

__all__ = [
    "BUILTIN_PRESETS",
    "KAGGLE_PREFIX",
    "KerasPresetLoader",
    "PresetLoader",
    "check_config_class",
    "find_subclass",
    "get_file",
    "load_json",
    "register_presets",
    "transformers_convert_vit",
]

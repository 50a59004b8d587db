"""`load_classifier(preset)`: the right classifier class for any preset."""

import json
import pathlib

import keras

from keras_har.models.videomae_presets import VIDEOMAE_PRESETS
from keras_har.utils.hub import HF_PREFIX, resolve_preset


def classifier_class_for(preset):
    """The classifier class that loads `preset` (a name, handle or directory)."""
    from keras_har.models.mean_pooled_vit_classifier import MeanPooledViTClassifier
    from keras_har.models.videomae_classifier import VideoMAEClassifier

    preset = str(preset)
    if preset in VIDEOMAE_PRESETS:
        return VideoMAEClassifier
    if preset in MeanPooledViTClassifier.known_presets():
        return MeanPooledViTClassifier
    if preset.startswith(HF_PREFIX):
        return MeanPooledViTClassifier if preset[len(HF_PREFIX):].startswith("timm/") else VideoMAEClassifier
    path = pathlib.Path(preset).expanduser()
    if path.is_file():
        return MeanPooledViTClassifier  # a bare timm state dict
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{preset}: not a preset directory (no config.json), an hf://org/name handle "
            "or a known preset name."
        )
    if (path / "task.json").exists():
        task = json.loads((path / "task.json").read_text())
        cls = keras.saving.get_registered_object(task["registered_name"])
        if cls is None:
            raise ValueError(f"{path}/task.json names unknown class {task['registered_name']!r}.")
        return cls
    config = json.loads((path / "config.json").read_text())
    if config.get("model_type") == "videomae":
        return VideoMAEClassifier
    if "architecture" in config:
        return MeanPooledViTClassifier
    raise ValueError(
        f"{path}/config.json is neither a VideoMAE (model_type 'videomae'), a timm "
        "checkpoint ('architecture') nor a keras-har preset (task.json)."
    )


def load_classifier(preset, **kwargs):
    """Load any supported classifier preset; kwargs go to `from_preset`."""
    cls = classifier_class_for(preset)
    if str(preset).startswith(HF_PREFIX):
        resolve_preset(preset)  # fail fast offline, before building anything
    return cls.from_preset(preset, **kwargs)

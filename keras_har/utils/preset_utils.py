"""The one place that decides what a preset is and which loader reads it.

`get_preset_loader(preset)` takes a known preset name (registered with
`register_presets`, as keras-hub's), an `hf://org/name[@revision]` handle, a
local directory or a weights file, and returns a keras-hub `PresetLoader`:

| what `preset` is                                        | format         | loader                                  |
|---------------------------------------------------------|----------------|-----------------------------------------|
| our own preset (`config.json` with `registered_name`)   | `keras`        | `KerasPresetLoader` (keras-hub's, plus head replacement) |
| a transformers directory (`config.json` with `model_type`) | `transformers` | `converters.preset_loaders.TransformersPresetLoader` |
| a timm directory (`config.json` with `architecture`)     | `timm`         | `converters.preset_loaders.TimmPresetLoader` |
| a bare weights file (`.safetensors`, `.pth`, `.bin`, `.pt`) | `timm`         | `TimmPresetLoader` (a timm state dict) |

Every `from_preset`, `keras_har.load_classifier`, the CLI and the recipes go
through it. As in keras-hub, models import this module and the converters
import the models. This module never imports the converters: the loader of a
foreign format is found by the format's name among the package's
`keras_har.preset_loaders` entry points (pyproject.toml), the plugin mechanism
through which another package could add a format too. So no import cycle
closes through the dispatcher.
"""

import functools
import importlib.metadata
import json
import logging
import pathlib

from keras_har.utils import keras_hub_compat
from keras_har.utils.hub import HF_PREFIX, PresetNotFoundError, resolve_preset

logger = logging.getLogger("keras_har")

CONFIG_FILE = "config.json"
TASK_CONFIG_FILE = "task.json"
WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
LOADER_ENTRY_POINTS = "keras_har.preset_loaders"  # format name -> PresetLoader class
register_presets = keras_hub_compat.register_presets


class PresetFormatError(ValueError):
    """A directory or file that is no preset format keras-har reads."""


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it is converted into."""


def known_preset_handle(name):
    """The handle of a registered preset name, or None."""
    entry = keras_hub_compat.BUILTIN_PRESETS.get(str(name))
    return entry["kaggle_handle"] if entry else None


def preset_path(preset):
    """A local `pathlib.Path` for a known name, `hf://` handle or path."""
    preset = str(preset)
    handle = known_preset_handle(preset) or preset
    if handle.startswith(keras_hub_compat.KAGGLE_PREFIX):  # keras-hub's own presets (e.g. ViT)
        return pathlib.Path(keras_hub_compat.get_file(handle, CONFIG_FILE)).parent
    if not handle.startswith(HF_PREFIX) and not pathlib.Path(handle).expanduser().exists():
        known = sorted(n for n, e in keras_hub_compat.BUILTIN_PRESETS.items()
                       if str(e.get("kaggle_handle", "")).startswith(HF_PREFIX))
        raise PresetNotFoundError(
            f"Preset {preset!r} is not a directory, a file, an hf://org/name handle or a "
            f"known preset name (known: {', '.join(known) or 'none'})."
        )
    return resolve_preset(handle)


def read_config(path):
    """`config.json` of a preset directory as a dict; errors name the file."""
    file = pathlib.Path(path) / CONFIG_FILE
    try:
        config = json.loads(file.read_text())
    except FileNotFoundError:
        raise PresetFormatError(
            f"{path}: not a preset directory (no {CONFIG_FILE}); expected a keras-har preset, a "
            "Hugging Face or timm checkpoint directory, or a weights file."
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PresetFormatError(f"{file}: not readable JSON ({e}).") from None
    if not isinstance(config, dict):
        raise PresetFormatError(f"{file}: expected a JSON object.")
    return config


def preset_format(path):
    """`("keras" | "transformers" | "timm", config dict)` of a local preset."""
    path = pathlib.Path(path)
    if path.is_file():
        if path.suffix not in WEIGHT_FILE_SUFFIXES:
            raise PresetFormatError(
                f"{path}: a file preset must be a weights file ({', '.join(WEIGHT_FILE_SUFFIXES)})."
            )
        return "timm", {}
    config = read_config(path)
    if "registered_name" in config:
        return "keras", config
    if "model_type" in config:
        return "transformers", config
    if "architecture" in config:
        return "timm", config
    raise PresetFormatError(
        f"{path}/{CONFIG_FILE} is neither a keras-har preset ('registered_name'), a "
        "transformers checkpoint ('model_type') nor a timm one ('architecture')."
    )


def get_preset_loader(preset):
    """The keras-hub `PresetLoader` that reads `preset` (see the module docstring)."""
    path = preset_path(preset)
    kind, config = preset_format(path)
    if kind == "keras":
        return KerasPresetLoader(str(path), config)
    return foreign_loader_class(kind, path)(path, config)


@functools.cache
def _foreign_loaders():
    return {entry.name: entry for entry in importlib.metadata.entry_points(group=LOADER_ENTRY_POINTS)}


def foreign_loader_class(kind, path="preset"):
    """The `PresetLoader` class registered for format `kind` ("transformers",
    "timm") under the `keras_har.preset_loaders` entry points."""
    entry = _foreign_loaders().get(kind)
    if entry is None:
        raise PresetFormatError(
            f"{path}: a {kind} checkpoint, and no loader of that format is registered (entry point "
            f"group {LOADER_ENTRY_POINTS!r}: keras-har registers its converters when installed, "
            "e.g. with `pip install -e .`; a bare PYTHONPATH has no entry points)."
        )
    return entry.load()


def resolve_num_classes(num_classes, labels, default=None):
    """Reconcile `num_classes` and `labels`; returns `(num_classes, labels)`."""
    if labels is not None:
        labels = [str(label) for label in labels]
        if num_classes is None:
            num_classes = len(labels)
        elif num_classes != len(labels):
            raise ValueError(f"num_classes={num_classes} but {len(labels)} labels were given.")
    if num_classes is None:
        num_classes = default
    return num_classes, labels


def check_image_size(task, image_size, source):
    """Only timm checkpoints are resized on load; elsewhere a size must match."""
    if image_size is None:
        return task
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if size != tuple(task.image_size):
        raise ValueError(
            f"{source} takes {task.image_size[0]}x{task.image_size[1]} frames; "
            f"image_size={image_size} is only supported when converting a timm checkpoint."
        )
    return task


class KerasPresetLoader(keras_hub_compat.KerasPresetLoader):
    """keras-hub's loader of presets written by `save_to_preset`, plus what a
    video classifier needs: a new head when `num_classes` / `labels` differ
    from the saved ones, and presets saved before the preprocessor existed
    (normalisation in the task config)."""

    def get_backbone_kwargs(self, **kwargs):
        """keras-hub forwards `dtype` / `image_shape` to the backbone; here
        every argument the saved backbone config has (`drop_path_rate`,
        `num_frames`, `image_size`, ...) overrides it."""
        backbone_kwargs, kwargs = super().get_backbone_kwargs(**kwargs)
        saved = self.config.get("config", {})
        for key in [k for k in kwargs if k in saved and k not in ("name", "trainable")]:
            backbone_kwargs[key] = kwargs.pop(key)
        return backbone_kwargs, kwargs

    def load_task(self, cls, load_weights, load_task_weights, num_classes=None, labels=None,
                  image_size=None, **kwargs):
        if image_size is not None and "image_size" in self.config.get("config", {}):
            kwargs["image_size"], image_size = image_size, None  # a backbone argument (VideoMAE)
        task_file = pathlib.Path(self.preset) / TASK_CONFIG_FILE
        task_config = keras_hub_compat.load_json(self.preset, TASK_CONFIG_FILE) if task_file.exists() else {}
        if not task_config or not issubclass(keras_hub_compat.check_config_class(task_config), cls):
            # A backbone alone, or another task's preset (e.g. a pre-training
            # run's model for a classifier): its encoder, with a new head.
            saved = task_config.get("config", {})
            for key in ("image_mean", "image_std"):
                if saved.get(key) is not None:
                    kwargs.setdefault(key, saved[key])
            backbone_kwargs, kwargs = self.get_backbone_kwargs(**kwargs)
            backbone = self.load_backbone(cls.backbone_cls, load_weights, **backbone_kwargs)
            logger.info("%s: the encoder of %s, with a new head.", cls.__name__, self.preset)
            head = {k: v for k, v in (("num_classes", num_classes), ("labels", labels)) if v is not None}
            task = cls(backbone, **head, **kwargs)
            return check_image_size(task, image_size, self.preset)
        saved = keras_hub_compat.load_json(self.preset, TASK_CONFIG_FILE).get("config", {})
        saved_classes = saved.get("num_classes")
        num_classes, labels = resolve_num_classes(num_classes, labels)
        if num_classes is not None and num_classes != saved_classes:
            logger.warning("%s: replacing the %s-way head of %s with a new %d-way head.",
                           cls.__name__, saved_classes, self.preset, num_classes)
            kwargs.update(num_classes=num_classes, labels=labels)  # the saved names are the old head's
            load_task_weights = False
        elif labels is not None:
            kwargs["labels"] = labels
        task = super().load_task(cls, load_weights, load_task_weights, **kwargs)
        return check_image_size(task, image_size, self.preset)


def _wrong_model(preset, loader, backbone_cls, cls):
    model_type = loader.config.get("model_type")
    held = f"its model_type is {model_type!r}" if model_type else f"it holds a {backbone_cls.__name__}"
    return CheckpointError(f"{preset}: {held}, which {cls.__name__} does not load.")


def task_from_preset(cls, preset, load_weights=True, **kwargs):
    """`cls.from_preset(preset)` for a keras-hub Task class: the class is
    narrowed to the subclass whose backbone the preset holds (so a base class
    loads any of its models)."""
    loader = get_preset_loader(preset)
    backbone_cls = loader.check_backbone_class()
    if getattr(cls, "backbone_cls", None) is not backbone_cls:
        try:
            cls = keras_hub_compat.find_subclass(preset, cls, backbone_cls)
        except ValueError:
            raise _wrong_model(preset, loader, backbone_cls, cls) from None
    return loader.load_task(cls, load_weights=load_weights, load_task_weights=True, **kwargs)


def backbone_from_preset(cls, preset, load_weights=True, **kwargs):
    """`cls.from_preset(preset)` for a Backbone class: the encoder of any
    checkpoint of its family (heads and decoders are left out)."""
    loader = get_preset_loader(preset)
    backbone_cls = loader.check_backbone_class()
    if not issubclass(backbone_cls, cls):
        raise _wrong_model(preset, loader, backbone_cls, cls)
    if isinstance(loader, KerasPresetLoader):
        return loader.load_backbone(backbone_cls, load_weights, **kwargs)
    return loader.load_backbone(backbone_cls, load_weights, check_unused=True, **kwargs)



class InferenceTaskWeights:
    """A keras-hub Task mixin: a preset's task weights are the model's alone.

    keras-hub's `save_task_weights` writes every variable outside the backbone,
    the optimizer's too when the model is compiled, and its
    `load_task_weights` then restores them into the loaded model's own
    optimizer ("Skipping variable loading for optimizer ..." when they
    differ). A preset is for inference and fine-tuning: the training state
    lives in the run's checkpoints. Here both skip the optimizer (so older
    presets that carry one load quietly too)."""

    def _outside_task_weights(self):
        skip = list(self.backbone._flatten_layers())
        if getattr(self, "optimizer", None) is not None:
            skip.append(self.optimizer)
        return skip

    def save_task_weights(self, filepath):
        import keras

        if not str(filepath).endswith(".weights.h5"):
            raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={filepath}")
        keras.saving.save_weights(self, filepath=filepath, objects_to_skip=self._outside_task_weights())

    def load_task_weights(self, filepath):
        import keras

        if not str(filepath).endswith(".weights.h5"):
            raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={filepath}")
        keras.saving.load_weights(self, filepath, objects_to_skip=self._outside_task_weights())

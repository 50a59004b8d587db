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
    if not path.exists():
        raise FileNotFoundError(
            f"{preset}: no such file or directory (nor an hf://org/name handle or a "
            "known preset name)."
        )
    if path.is_file():
        return MeanPooledViTClassifier  # a bare timm state dict
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{preset}: not a preset directory (no config.json), an hf://org/name handle "
            "or a known preset name."
        )
    if (path / "task.json").exists():
        from keras_har.models.video_classifier import VideoClassifier

        task = json.loads((path / "task.json").read_text())
        name = task.get("registered_name") if isinstance(task, dict) else None
        cls = keras.saving.get_registered_object(name) if name else None
        if not (isinstance(cls, type) and issubclass(cls, VideoClassifier)):
            raise ValueError(
                f"{path}/task.json names {name!r}, which is not a keras-har video classifier."
            )
        return cls
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}/config.json is not valid JSON ({e}).") from None
    if not isinstance(config, dict):
        config = {}
    if config.get("model_type") == "videomae":
        return VideoMAEClassifier
    if "architecture" in config or config.get("model_type") == "vit":
        return MeanPooledViTClassifier  # timm, or a transformers ViT
    raise ValueError(
        f"{path}/config.json is neither a VideoMAE (model_type 'videomae'), a timm "
        "('architecture') or transformers ViT checkpoint nor a keras-har classifier "
        "preset (task.json)."
    )


def load_classifier(preset, **kwargs):
    """Load any supported classifier preset; kwargs go to `from_preset`."""
    cls = classifier_class_for(preset)
    if str(preset).startswith(HF_PREFIX):
        resolve_preset(preset)  # fail fast offline, before building anything
    return cls.from_preset(preset, **kwargs)

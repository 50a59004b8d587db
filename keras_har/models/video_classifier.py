"""`VideoClassifier`: the Task base shared by every video classifier here.

Inputs are float videos `(batch, frames, height, width, 3)`, channels last,
already normalised with the model's `image_mean` / `image_std` (which every
classifier carries in its config, so loaders and the CLI know them). Outputs
are logits `(batch, num_classes)`.

`from_preset(preset, num_classes=None, labels=None)` accepts:
  * a known name from the subclass's `known_presets()` table,
  * `hf://org/name[@revision]` (fetched with huggingface_hub),
  * a local directory in a foreign format the subclass converts
    (`_from_foreign_preset`), or one written by our own `save_to_preset`.
"""

import json
import logging
import pathlib

import keras
from keras_hub.models import Task

from keras_har.utils.hub import HF_PREFIX, resolve_preset

logger = logging.getLogger("keras_har")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_num_classes(num_classes, labels, default=None):
    """Reconcile `num_classes` and `labels`; returns (num_classes, labels)."""
    if labels is not None:
        labels = [str(label) for label in labels]
        if num_classes is None:
            num_classes = len(labels)
        elif num_classes != len(labels):
            raise ValueError(
                f"num_classes={num_classes} but {len(labels)} labels were given."
            )
    if num_classes is None:
        num_classes = default
    return num_classes, labels


class VideoClassifier(Task):
    """Base class: label names, normalisation constants and preset loading."""

    def _init_video_classifier(self, num_classes, labels, image_mean, image_std):
        # Called by subclasses after the functional graph is built.
        self.num_classes = int(num_classes)
        self.labels = list(labels) if labels is not None else None
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)

    @property
    def class_names(self):
        """The label of every output index (`class_<i>` where none was given)."""
        if self.labels:
            return list(self.labels)
        return [f"class_{i}" for i in range(self.num_classes)]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "labels": self.labels,
                "image_mean": list(self.image_mean),
                "image_std": list(self.image_std),
            }
        )
        return config

    @classmethod
    def known_presets(cls):
        """`{name: {"handle": "hf://...", ...}}`; subclasses fill it in."""
        return {}

    @classmethod
    def _from_foreign_preset(cls, path, num_classes=None, labels=None, **kwargs):
        raise NotImplementedError

    @classmethod
    def _is_foreign_preset(cls, path):
        """True for a directory/file the subclass converts (not our format)."""
        path = pathlib.Path(path)
        if path.is_file():
            return True
        config_file = path / "config.json"
        if not config_file.exists():
            return True  # let the converter report what is missing
        return "registered_name" not in json.loads(config_file.read_text())

    @classmethod
    def from_preset(cls, preset, num_classes=None, labels=None, load_weights=True, **kwargs):
        """Build the classifier from a preset; see the module docstring."""
        preset = str(preset)
        known = cls.known_presets()
        if preset in known:
            preset = known[preset]["handle"]
        elif not preset.startswith(HF_PREFIX) and not pathlib.Path(preset).expanduser().exists():
            names = ", ".join(sorted(known)) or "none"
            raise FileNotFoundError(
                f"Preset {preset!r} is not a directory, a file, an hf://org/name "
                f"handle or a known preset name (known: {names})."
            )
        path = resolve_preset(preset)
        if cls._is_foreign_preset(path):
            return cls._from_foreign_preset(
                path, num_classes=num_classes, labels=labels, load_weights=load_weights, **kwargs
            )
        return cls._from_own_preset(path, num_classes, labels, load_weights, **kwargs)

    @classmethod
    def _from_own_preset(cls, path, num_classes, labels, load_weights, **kwargs):
        task_file = path / "task.json"
        saved = {}
        if task_file.exists():
            saved = json.loads(task_file.read_text()).get("config", {})
        saved_classes = saved.get("num_classes")
        num_classes, labels = resolve_num_classes(num_classes, labels)
        if num_classes is not None and num_classes != saved_classes:
            logger.warning(
                "%s: replacing the %s-way head of %s with a new %d-way head.",
                cls.__name__, saved_classes, path, num_classes,
            )
            kwargs["num_classes"] = num_classes
            kwargs["labels"] = labels  # the saved names belong to the old head
        elif labels is not None:
            kwargs["labels"] = labels
        model = Task.from_preset.__func__(cls, str(path), load_weights=load_weights, **kwargs)
        return model

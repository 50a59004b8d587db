"""`VideoClassifier`: the Task base shared by every video classifier here.

Inputs are videos `(batch, frames, height, width, 3)`, channels last: raw
uint8 frames through `predict` / `fit` / `evaluate` (the attached
`VideoClassifierPreprocessor` resizes and normalises them), or float frames
already normalised with the model's `image_mean` / `image_std` (what the
`keras_har.data` loaders yield; `model(x)` always takes these). Outputs are
logits `(batch, num_classes)`.

`from_preset(preset, num_classes=None, labels=None)` accepts a registered
name (`cls.presets`), `hf://org/name[@revision]`, a Hugging Face / timm
directory or weights file, or a directory written by `save_to_preset`; the
format is decided in one place, `keras_har.utils.preset_utils`. Called on
this base class it returns whichever classifier the preset holds.
"""

import logging

from keras_hub.models import Task

from keras_har.utils import preset_utils

logger = logging.getLogger("keras_har")


class VideoClassifier(preset_utils.InferenceTaskWeights, Task):
    """Base class: label names, the preprocessor, parameter groups, preset loading.

    Subclasses set `backbone_cls`, `preprocessor_cls`, `default_mean` /
    `default_std`. The parameter groups (`layer_id(path)`: which depth a
    variable sits at, for layer-wise learning-rate decay; `no_weight_decay()`)
    and the sharding layout (`get_layout_map(device_mesh)`) are the
    backbone's; a subclass whose backbone lacks them defines them.
    """

    default_mean = None
    default_std = None

    def _init_video_classifier(self, num_classes, labels):
        # Called by subclasses after the functional graph is built.
        self.num_classes = int(num_classes)
        self.labels = list(labels) if labels is not None else None

    def _default_preprocessor(self, preprocessor, image_size, image_mean, image_std):
        """The given preprocessor, else one normalising with `image_mean` /
        `image_std` (default: the model's) at the model's frame size."""
        if preprocessor is not None:
            return preprocessor
        return self.preprocessor_cls.from_normalization(
            image_size=image_size,
            mean=image_mean if image_mean is not None else self.default_mean,
            std=image_std if image_std is not None else self.default_std,
        )

    @property
    def image_mean(self):
        """The per-channel mean inputs are normalised with (on [0, 1] pixels)."""
        return self.preprocessor.image_mean

    @property
    def image_std(self):
        return self.preprocessor.image_std

    @property
    def class_names(self):
        """The label of every output index (`class_<i>` where none was given)."""
        if self.labels:
            return list(self.labels)
        return [f"class_{i}" for i in range(self.num_classes)]

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "labels": self.labels})
        return config

    # Parameter groups, asked for by keras_har.training.optimizers.
    @property
    def num_layers(self):
        return self.backbone.num_layers

    def layer_id(self, path):
        """0 for embeddings, i + 1 for block i, `num_layers + 1` for the rest
        (final norms, head): BEiT / VideoMAE's layer-wise decay ids."""
        return self.backbone.layer_id(path)

    def no_weight_decay(self):
        """Regexes of variable paths never weight-decayed, besides every 0-/1-D
        variable (biases, norms): e.g. position and class tokens."""
        return self.backbone.no_weight_decay()

    @classmethod
    def get_layout_map(cls, device_mesh, model_parallel_dim_name="model"):
        """The `keras.distribution.LayoutMap` of model-parallel training (a
        class method: the distribution is set before the model is built)."""
        return cls.backbone_cls.get_layout_map(device_mesh, model_parallel_dim_name)

    def head_prefixes(self):
        """Path prefixes of the classification head's variables."""
        return (f"{self.predictions.name}/",)

    @classmethod
    def from_preset(cls, preset, num_classes=None, labels=None, load_weights=True, **kwargs):
        """Build the classifier from a preset; see the module docstring.

        `num_classes` / `labels` different from the checkpoint's put a new
        head on (logged); other keyword arguments go to the task (`dropout`,
        `pooling`) or override the backbone (`drop_path_rate=0.1`,
        `num_frames=8`, `image_size=160`, `dtype="mixed_bfloat16"`).
        """
        return preset_utils.task_from_preset(
            cls, preset, load_weights=load_weights, num_classes=num_classes, labels=labels, **kwargs
        )

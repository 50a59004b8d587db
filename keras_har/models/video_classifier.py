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

import inspect
import logging

import keras
from keras_hub.models import Task

from keras_har.utils import preset_utils

logger = logging.getLogger("keras_har")


class _TopKCategoricalAccuracy(keras.metrics.TopKCategoricalAccuracy):
    """Top-k accuracy on float32 logits: TensorFlow's `in_top_k` takes no
    bfloat16 (the logits of a `mixed_bfloat16` model)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, keras.ops.cast(y_pred, "float32"), sample_weight=sample_weight)


def accuracy_metrics(num_classes):
    """Top-1 and top-5 accuracy (top-`num_classes` with fewer classes) on
    one-hot / soft targets: what `VideoClassifier.compile` tracks by default."""
    return [
        keras.metrics.CategoricalAccuracy(name="top1"),
        _TopKCategoricalAccuracy(k=min(5, num_classes), name="top5"),
    ]


class VideoClassifier(preset_utils.InferenceTaskWeights, Task):
    """Base class: the classification head and its labels, the preprocessor,
    `compile()` defaults, parameter groups, preset loading.

    A subclass builds its functional graph as `pooled features ->
    self.classification_head(features) -> logits`, after `init_head(...)`
    made the head's layers (`output_dropout`, a Dense `predictions`), and sets
    `backbone_cls`, `preprocessor_cls` (whose video converter holds the
    family's default normalisation) and, for `from_architecture`,
    `backbone_from_architecture`. The parameter groups (`layer_id(path)`:
    which depth a variable sits at, for layer-wise learning-rate decay;
    `no_weight_decay()`) and the sharding layout (`get_layout_map(device_mesh)`)
    are the backbone's; a subclass whose backbone lacks them defines them.
    """

    # === The head (built by subclasses before the functional graph) ===
    def init_head(self, num_classes, labels, dropout, dtype):
        """Reconcile `num_classes` / `labels` and create the head's layers."""
        num_classes, labels = preset_utils.resolve_num_classes(num_classes, labels)
        if num_classes is None:
            raise ValueError(f"{type(self).__name__} needs num_classes or labels.")
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout", dtype=dtype)
        self.predictions = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="predictions",
            dtype=dtype,
        )
        self._head_config = (int(num_classes), list(labels) if labels is not None else None, dropout)

    def classification_head(self, features):
        """Pooled features `(batch, dim)` -> logits `(batch, num_classes)`."""
        return self.predictions(self.output_dropout(features))

    def finish_head(self):
        # Config attributes are set after the functional graph, as keras-hub's tasks do.
        self.num_classes, self.labels, self.dropout = self._head_config

    def default_preprocessor(self, preprocessor, image_size, image_mean, image_std):
        """The given preprocessor, else one normalising with `image_mean` /
        `image_std` (default: the family's video converter's) at the model's
        frame size."""
        if preprocessor is not None:
            return preprocessor
        return self.preprocessor_cls.from_normalization(image_size=image_size, mean=image_mean, std=image_std)

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """`keras.Model.compile` with defaults, as keras-hub's `ImageClassifier`:
        `"auto"` optimizer AdamW (lr 1e-4, weight decay 0.05), loss
        `CategoricalCrossentropy(from_logits=True)` on one-hot or soft targets
        (what `keras_har.data` loaders yield; pass
        `loss="sparse_categorical_crossentropy"` and `metrics=[...]` for
        integer labels) and metrics top-1 / top-5 accuracy."""
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(1e-4, weight_decay=0.05)
        if loss == "auto":
            loss = keras.losses.CategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = accuracy_metrics(self.predictions.units)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    @classmethod
    def backbone_from_architecture(cls, name, **overrides):
        """The family's backbone of the named size (random init)."""
        return cls.backbone_cls.from_architecture(name, **overrides)

    @classmethod
    def from_architecture(cls, name, num_classes=None, labels=None, **kwargs):
        """A randomly initialised classifier of the named size (the family's
        `*_ARCHITECTURES` table); `kwargs` are the task's arguments (`dropout`,
        `pooling`, `image_mean`, ...) or backbone overrides (`num_frames=8`,
        `image_size=160`, `drop_path_rate=0.1`, `dtype=...`, a size)."""
        task_args = set(inspect.signature(cls.__init__).parameters) - {"self", "backbone", "kwargs"}
        task_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in task_args}
        backbone = cls.backbone_from_architecture(name, **kwargs)
        return cls(backbone, num_classes=num_classes, labels=labels, **task_kwargs)

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
        config.update({"num_classes": self.num_classes, "labels": self.labels, "dropout": self.dropout})
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

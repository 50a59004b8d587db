"""VideoMAE video classifier: the Task on top of `VideoMAEBackbone`.

Pooling is transformers' `VideoMAEForVideoClassification`: with
`use_mean_pooling` the mean of all tokens followed by `fc_norm`, otherwise the
first token (the backbone already ends with its LayerNorm); then dropout and a
Dense head named `predictions`.
"""

import logging

import keras
from keras import layers

from keras_har.converters import videomae as videomae_converter
from keras_har.models.video_classifier import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VideoClassifier,
    resolve_num_classes,
)
from keras_har.models.videomae_backbone import VideoMAEBackbone
from keras_har.models.videomae_presets import VIDEOMAE_PRESETS

logger = logging.getLogger("keras_har")


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEClassifier(VideoClassifier):
    """VideoMAE for video classification.

    Args:
        backbone: a `VideoMAEBackbone`.
        num_classes: number of output classes (or give `labels`).
        labels: optional class names, one per output.
        pooling: "mean" (tokens mean + fc_norm) or "first" (first token);
            defaults to "mean" when the backbone uses mean pooling.
        dropout: dropout before the head (the official `fc_drop_rate`).
        image_mean, image_std: the normalisation the inputs must have had
            (ImageNet's by default, as the original VideoMAE trains with).

    Inputs are float videos `(batch, frames, height, width, 3)` already
    normalised; outputs are logits.

    Example:
    ```python
    model = VideoMAEClassifier.from_preset("videomae_base_kinetics", num_classes=51)
    model.compile(optimizer="adamw", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    ```
    """

    backbone_cls = VideoMAEBackbone

    def __init__(
        self,
        backbone,
        num_classes=None,
        labels=None,
        pooling=None,
        dropout=0.0,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        preprocessor=None,
        **kwargs,
    ):
        num_classes, labels = resolve_num_classes(num_classes, labels)
        if num_classes is None:
            raise ValueError("VideoMAEClassifier needs num_classes or labels.")
        if pooling is None:
            pooling = "mean" if backbone.use_mean_pooling else "first"
        if pooling not in ("mean", "first"):
            raise ValueError(f"pooling must be 'mean' or 'first', got {pooling!r}.")

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        policy = backbone.dtype_policy
        self.fc_norm = (
            layers.LayerNormalization(
                epsilon=videomae_converter.FC_NORM_EPS, name="fc_norm", dtype=policy
            )
            if pooling == "mean"
            else None
        )
        self.output_dropout = layers.Dropout(dropout, name="output_dropout", dtype=policy)
        self.predictions = layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="predictions",
            dtype=policy,
        )

        # === Functional model ===
        inputs = backbone.input
        x = backbone(inputs)
        if pooling == "mean":
            x = layers.GlobalAveragePooling1D(name="token_mean", dtype=policy)(x)
            x = self.fc_norm(x)
        else:
            x = layers.Lambda(lambda t: t[:, 0], name="first_token", dtype=policy)(x)
        x = self.output_dropout(x)
        outputs = self.predictions(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.pooling = pooling
        self.dropout = dropout
        self._init_video_classifier(num_classes, labels, image_mean, image_std)

    def get_config(self):
        config = super().get_config()
        config.update({"pooling": self.pooling, "dropout": self.dropout})
        return config

    @classmethod
    def known_presets(cls):
        return VIDEOMAE_PRESETS

    @classmethod
    def _from_foreign_preset(
        cls, path, num_classes=None, labels=None, load_weights=True, dropout=0.0, pooling=None, **kwargs
    ):
        """A Hugging Face VideoMAE directory -> classifier (see the converter)."""
        backbone, config, state = videomae_converter.convert_backbone(
            path, load_weights=load_weights, **kwargs
        )
        has_head = "classifier.weight" in state
        ckpt_classes = int(state.tensors["classifier.weight"].shape[0]) if has_head else None
        ckpt_labels = videomae_converter.labels_from_hf_config(config) if has_head else None
        num_classes, labels = resolve_num_classes(num_classes, labels)
        keep_head = has_head and num_classes in (None, ckpt_classes)
        if num_classes is None:
            if not has_head:
                raise ValueError(
                    f"{path} has no classification head (a {config.get('architectures')} "
                    "checkpoint): pass num_classes or labels."
                )
            num_classes = ckpt_classes
        if keep_head and labels is None and ckpt_labels and len(ckpt_labels) == num_classes:
            labels = ckpt_labels
        norm = videomae_converter.read_preprocessor_config(path)
        mean, std = norm if norm else (IMAGENET_MEAN, IMAGENET_STD)
        model = cls(
            backbone,
            num_classes=num_classes,
            labels=labels,
            pooling=pooling,
            dropout=dropout,
            image_mean=mean,
            image_std=std,
        )
        if not load_weights:
            return model
        if model.fc_norm is not None and "fc_norm.weight" in state:
            videomae_converter.load_layer_norm(model.fc_norm, state, "fc_norm", backbone.hidden_size)
        if keep_head:
            videomae_converter.load_classifier_head(model, state)
        elif has_head:
            logger.warning(
                "%s: replacing the checkpoint's %d-way head with a new %d-way head "
                "(what ignore_mismatched_sizes=True does).",
                path, ckpt_classes, num_classes,
            )
            state.skip("classifier.weight")
            state.skip("classifier.bias")
        else:
            logger.info("%s: no head in the checkpoint; a new %d-way head.", path, num_classes)
        state.check_all_used(ignore_prefixes=videomae_converter.PRETRAINING_ONLY)
        return model

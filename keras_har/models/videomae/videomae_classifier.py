"""VideoMAE video classifier: the Task on top of `VideoMAEBackbone`.

Pooling is transformers' `VideoMAEForVideoClassification`: with
`use_mean_pooling` the mean of all tokens followed by `fc_norm`, otherwise the
first token (the backbone already ends with its LayerNorm); then dropout and a
Dense head named `predictions`.
"""

import keras
from keras import layers

from keras_har.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from keras_har.models.video_classifier import VideoClassifier
from keras_har.models.videomae_backbone import VideoMAEBackbone
from keras_har.models.videomae_classifier_preprocessor import VideoMAEClassifierPreprocessor
from keras_har.utils.preset_utils import resolve_num_classes

# transformers' fc_norm is `nn.LayerNorm(hidden_size)`: torch's default eps.
FC_NORM_EPS = 1e-5


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
        preprocessor: a `VideoMAEClassifierPreprocessor`; by default one that
            normalises with `image_mean` / `image_std` (ImageNet's unless
            given, as the original VideoMAE trains with).

    Inputs: raw uint8 frames through `predict` / `fit` (the preprocessor
    normalises them), or float frames already normalised; outputs are logits.

    Example:
    ```python
    model = VideoMAEClassifier.from_preset("videomae_base_kinetics", num_classes=51)
    model.compile(optimizer="adamw", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    ```
    """

    backbone_cls = VideoMAEBackbone
    preprocessor_cls = VideoMAEClassifierPreprocessor
    default_mean = IMAGENET_MEAN
    default_std = IMAGENET_STD

    def __init__(
        self,
        backbone,
        num_classes=None,
        labels=None,
        pooling=None,
        dropout=0.0,
        preprocessor=None,
        image_mean=None,
        image_std=None,
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
        self.preprocessor = self._default_preprocessor(preprocessor, backbone.image_size, image_mean, image_std)
        policy = backbone.dtype_policy
        self.fc_norm = (
            layers.LayerNormalization(epsilon=FC_NORM_EPS, name="fc_norm", dtype=policy)
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
        self._init_video_classifier(num_classes, labels)

    def get_config(self):
        config = super().get_config()
        config.update({"pooling": self.pooling, "dropout": self.dropout})
        return config

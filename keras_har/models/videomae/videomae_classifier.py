"""VideoMAE video classifier: the Task on top of `VideoMAEBackbone`.

Pooling is transformers' `VideoMAEForVideoClassification`: with
`use_mean_pooling` the mean of all tokens followed by `fc_norm`, otherwise the
first token (the backbone already ends with its LayerNorm); then the
`VideoClassifier` head (dropout and a Dense `predictions`).
"""

import keras
from keras import layers

from keras_har.models.video_classifier import VideoClassifier
from keras_har.models.videomae.videomae_backbone import VideoMAEBackbone
from keras_har.models.videomae.videomae_classifier_preprocessor import VideoMAEClassifierPreprocessor

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
    model.compile()  # AdamW, cross-entropy on one-hot targets, top-1 / top-5
    tiny = VideoMAEClassifier.from_architecture("tiny", num_classes=5, image_size=32, num_frames=4)
    ```
    """

    backbone_cls = VideoMAEBackbone
    preprocessor_cls = VideoMAEClassifierPreprocessor

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
        if pooling is None:
            pooling = "mean" if backbone.use_mean_pooling else "first"
        if pooling not in ("mean", "first"):
            raise ValueError(f"pooling must be 'mean' or 'first', got {pooling!r}.")

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = self.default_preprocessor(preprocessor, backbone.image_size, image_mean, image_std)
        policy = backbone.dtype_policy
        self.fc_norm = (
            layers.LayerNormalization(epsilon=FC_NORM_EPS, name="fc_norm", dtype=policy)
            if pooling == "mean"
            else None
        )
        self.init_head(num_classes, labels, dropout, policy)

        # === Functional model ===
        inputs = backbone.input
        x = backbone(inputs)
        if pooling == "mean":
            x = layers.GlobalAveragePooling1D(name="token_mean", dtype=policy)(x)
            x = self.fc_norm(x)
        else:
            x = layers.Lambda(lambda t: t[:, 0], name="first_token", dtype=policy)(x)
        outputs = self.classification_head(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.pooling = pooling
        self.finish_head()

    def get_config(self):
        config = super().get_config()
        config.update({"pooling": self.pooling})
        return config

"""`MeanPooledViTVideoConverter`: the mean-pooled ViT's frames, mean = std = 0.5 by default."""

import keras
import keras_hub

from keras_har.models.video_converter import NormalizedVideoConverter


@keras.saving.register_keras_serializable(package="keras_har")
class MeanPooledViTVideoConverter(NormalizedVideoConverter):
    """Normalises to [-1, 1] (mean = std = 0.5, timm's augreg ViTs) unless given."""

    backbone_cls = keras_hub.models.ViTBackbone
    default_mean = (0.5, 0.5, 0.5)
    default_std = (0.5, 0.5, 0.5)

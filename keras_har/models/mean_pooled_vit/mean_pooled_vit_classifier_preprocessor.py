"""The mean-pooled ViT classifier's preprocessor and video converter (mean = std = 0.5 by default)."""

import keras
import keras_hub

from keras_har.models.video_classifier_preprocessor import VideoClassifierPreprocessor
from keras_har.models.video_converter import NormalizedVideoConverter


@keras.saving.register_keras_serializable(package="keras_har")
class MeanPooledViTVideoConverter(NormalizedVideoConverter):
    backbone_cls = keras_hub.models.ViTBackbone


@keras.saving.register_keras_serializable(package="keras_har")
class MeanPooledViTClassifierPreprocessor(VideoClassifierPreprocessor):
    backbone_cls = keras_hub.models.ViTBackbone
    video_converter_cls = MeanPooledViTVideoConverter

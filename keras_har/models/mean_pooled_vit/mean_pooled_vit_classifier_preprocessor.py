"""`MeanPooledViTClassifierPreprocessor`: raw frames -> `MeanPooledViTClassifier` inputs."""

import keras
import keras_hub

from keras_har.models.mean_pooled_vit.mean_pooled_vit_video_converter import MeanPooledViTVideoConverter
from keras_har.models.video_classifier_preprocessor import VideoClassifierPreprocessor


@keras.saving.register_keras_serializable(package="keras_har")
class MeanPooledViTClassifierPreprocessor(VideoClassifierPreprocessor):
    backbone_cls = keras_hub.models.ViTBackbone
    video_converter_cls = MeanPooledViTVideoConverter

"""`VideoMAEClassifierPreprocessor`: raw frames -> `VideoMAEClassifier` inputs."""

import keras

from keras_har.models.video_classifier_preprocessor import VideoClassifierPreprocessor
from keras_har.models.videomae.videomae_backbone import VideoMAEBackbone
from keras_har.models.videomae.videomae_video_converter import VideoMAEVideoConverter


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEClassifierPreprocessor(VideoClassifierPreprocessor):
    backbone_cls = VideoMAEBackbone
    video_converter_cls = VideoMAEVideoConverter

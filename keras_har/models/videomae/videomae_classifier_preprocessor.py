"""The VideoMAE classifier's preprocessor and video converter (ImageNet mean/std by default)."""

import keras

from keras_har.models.video_classifier_preprocessor import VideoClassifierPreprocessor
from keras_har.models.video_converter import NormalizedVideoConverter
from keras_har.models.videomae_backbone import VideoMAEBackbone


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEVideoConverter(NormalizedVideoConverter):
    backbone_cls = VideoMAEBackbone


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEClassifierPreprocessor(VideoClassifierPreprocessor):
    backbone_cls = VideoMAEBackbone
    video_converter_cls = VideoMAEVideoConverter

"""`VideoMAEVideoConverter`: VideoMAE's frames, ImageNet mean / std by default."""

import keras

from keras_har.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from keras_har.models.video_converter import NormalizedVideoConverter
from keras_har.models.videomae.videomae_backbone import VideoMAEBackbone


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEVideoConverter(NormalizedVideoConverter):
    """Normalises with ImageNet's mean / std unless given (what the original
    VideoMAE trains with)."""

    backbone_cls = VideoMAEBackbone
    default_mean = IMAGENET_MEAN
    default_std = IMAGENET_STD

"""VideoMAE: the encoder, its classifier and masked-autoencoder pre-trainer,
their preprocessing, named sizes and the MCG-NJU checkpoints (registered here)."""

from keras_har.models.videomae.videomae_backbone import VideoMAEBackbone
from keras_har.models.videomae.videomae_classifier import VideoMAEClassifier
from keras_har.models.videomae.videomae_classifier_preprocessor import VideoMAEClassifierPreprocessor
from keras_har.models.videomae.videomae_presets import (
    VIDEOMAE_ARCHITECTURES,
    VIDEOMAE_DECODER,
    VIDEOMAE_PRESETS,
)
from keras_har.models.videomae.videomae_pretrainer import VideoMAEPretrainer
from keras_har.models.videomae.videomae_video_converter import VideoMAEVideoConverter
from keras_har.utils.preset_utils import register_presets

register_presets(VIDEOMAE_PRESETS, VideoMAEBackbone)

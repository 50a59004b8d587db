from keras_har.models.mean_pooled_vit_classifier import MeanPooledViTClassifier
from keras_har.models.mean_pooled_vit_classifier_preprocessor import (
    MeanPooledViTClassifierPreprocessor,
    MeanPooledViTVideoConverter,
)
from keras_har.models.mean_pooled_vit_presets import MEAN_POOLED_VIT_PRESETS
from keras_har.models.video_classifier import VideoClassifier
from keras_har.models.video_classifier_preprocessor import VideoClassifierPreprocessor
from keras_har.models.video_converter import NormalizedVideoConverter
from keras_har.models.videomae_backbone import VideoMAEBackbone
from keras_har.models.videomae_classifier import VideoMAEClassifier
from keras_har.models.videomae_classifier_preprocessor import (
    VideoMAEClassifierPreprocessor,
    VideoMAEVideoConverter,
)
from keras_har.models.videomae_presets import VIDEOMAE_PRESETS
from keras_har.models.videomae_pretrainer import VideoMAEPretrainer
from keras_har.utils.preset_utils import register_presets

register_presets(VIDEOMAE_PRESETS, VideoMAEBackbone)
register_presets(MEAN_POOLED_VIT_PRESETS, MeanPooledViTClassifier)

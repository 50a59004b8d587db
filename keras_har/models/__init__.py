from keras_har.models.mean_pooled_vit import (
    MEAN_POOLED_VIT_ARCHITECTURES,
    MEAN_POOLED_VIT_PRESETS,
    MeanPooledViTClassifier,
    MeanPooledViTClassifierPreprocessor,
    MeanPooledViTVideoConverter,
)
from keras_har.models.video_classifier import VideoClassifier
from keras_har.models.video_classifier_preprocessor import VideoClassifierPreprocessor
from keras_har.models.video_converter import NormalizedVideoConverter
from keras_har.models.videomae import (
    VIDEOMAE_ARCHITECTURES,
    VIDEOMAE_DECODER,
    VIDEOMAE_PRESETS,
    VideoMAEBackbone,
    VideoMAEClassifier,
    VideoMAEClassifierPreprocessor,
    VideoMAEPretrainer,
    VideoMAEVideoConverter,
)

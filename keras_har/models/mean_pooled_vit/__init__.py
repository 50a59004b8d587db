"""The mean-pooled image-ViT baseline: keras-hub's `ViTBackbone` per frame,
class tokens averaged over the clip; its preprocessing, named sizes and timm
checkpoints (registered here)."""

from keras_har.models.mean_pooled_vit.mean_pooled_vit_classifier import MeanPooledViTClassifier
from keras_har.models.mean_pooled_vit.mean_pooled_vit_classifier_preprocessor import (
    MeanPooledViTClassifierPreprocessor,
)
from keras_har.models.mean_pooled_vit.mean_pooled_vit_presets import (
    MEAN_POOLED_VIT_ARCHITECTURES,
    MEAN_POOLED_VIT_PRESETS,
)
from keras_har.models.mean_pooled_vit.mean_pooled_vit_video_converter import MeanPooledViTVideoConverter
from keras_har.utils.preset_utils import register_presets

register_presets(MEAN_POOLED_VIT_PRESETS, MeanPooledViTClassifier)

"""The mean-pooled image-ViT baseline: a keras-hub `ViTBackbone` per frame.

Every frame of a clip goes through the image backbone (frames are folded into
the batch), the class-token feature after the final LayerNorm is averaged over
the frames, then dropout and a Dense head named `predictions`. With one frame
this is exactly timm's / keras-hub's image classifier; with T frames the
logits are those of the mean feature (so, the head being linear, the mean of
the per-frame logits).
"""

import re

import keras
import keras_hub

from keras_har.models.architectures import architecture_config
from keras_har.models.mean_pooled_vit.mean_pooled_vit_layers import FoldFrames, FrameMeanPooling
from keras_har.models.mean_pooled_vit.mean_pooled_vit_classifier_preprocessor import (
    MeanPooledViTClassifierPreprocessor,
)
from keras_har.models.mean_pooled_vit.mean_pooled_vit_presets import MEAN_POOLED_VIT_ARCHITECTURES
from keras_har.models.video_classifier import VideoClassifier


@keras.saving.register_keras_serializable(package="keras_har")
class MeanPooledViTClassifier(VideoClassifier):
    """An image ViT applied to every frame, class tokens averaged over frames.

    Args:
        backbone: a `keras_hub.models.ViTBackbone` (with a class token).
        num_classes: number of output classes (or give `labels`).
        labels: optional class names, one per output.
        dropout: dropout on the pooled feature, before the head (default 0).
        preprocessor: a `MeanPooledViTClassifierPreprocessor`; by default one
            normalising with `image_mean` / `image_std` (0.5 / 0.5 unless
            given, as timm's augreg ViTs).

    `from_architecture("tiny" | "small", num_classes=..., image_size=...)`
    builds a randomly initialised one (`MEAN_POOLED_VIT_ARCHITECTURES`).

    Inputs are videos `(batch, frames, height, width, 3)`: raw uint8 frames
    through `predict` / `fit`, or float frames already normalised, with
    `height, width` the backbone's image size and any number of frames;
    outputs are logits `(batch, num_classes)`.

    Example:
    ```python
    model = MeanPooledViTClassifier.from_preset(
        "hf://timm/vit_small_patch16_224.augreg_in21k_ft_in1k", num_classes=51
    )
    logits = model(videos)  # (batch, 51)
    ```
    """

    backbone_cls = keras_hub.models.ViTBackbone
    preprocessor_cls = MeanPooledViTClassifierPreprocessor

    def __init__(
        self,
        backbone,
        num_classes=None,
        labels=None,
        dropout=0.0,
        preprocessor=None,
        image_mean=None,
        image_std=None,
        **kwargs,
    ):
        if not getattr(backbone, "use_class_token", True):
            raise ValueError("MeanPooledViTClassifier pools the class token: the backbone needs one.")

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = self.default_preprocessor(
            preprocessor, tuple(backbone.image_shape[:2]), image_mean, image_std
        )
        policy = backbone.dtype_policy
        self.init_head(num_classes, labels, dropout, policy)

        # === Functional model ===
        height, width, channels = backbone.image_shape
        videos = keras.Input(shape=(None, height, width, channels), name="videos")
        frames = FoldFrames(name="fold_frames", dtype=policy)(videos)
        tokens = backbone(frames)
        x = FrameMeanPooling(name="frame_mean", dtype=policy)([tokens, videos])
        outputs = self.classification_head(x)
        super().__init__(inputs=videos, outputs=outputs, **kwargs)

        # === Config ===
        self.finish_head()

    @property
    def image_size(self):
        return tuple(self.backbone.image_shape[:2])

    @classmethod
    def backbone_from_architecture(cls, name, image_size=224, dtype=None, **overrides):
        """keras-hub's `ViTBackbone` of the named size
        (`MEAN_POOLED_VIT_ARCHITECTURES`: tiny, small) for `image_size` frames."""
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        kwargs = architecture_config(MEAN_POOLED_VIT_ARCHITECTURES, name, "mean-pooled ViT", **overrides)
        return keras_hub.models.ViTBackbone(image_shape=(*size, 3), dtype=dtype, **kwargs)

    @classmethod
    def from_scratch(cls, image_size=224, num_classes=None, labels=None, dropout=0.0, dtype=None,
                     **backbone_kwargs):
        """A randomly initialised classifier on ViT-S/16, with `backbone_kwargs`
        (patch_size, num_layers, num_heads, hidden_dim, mlp_dim, ...) replacing
        its sizes: `from_architecture("small", ...)`."""
        return cls.from_architecture("small", num_classes=num_classes, labels=labels, dropout=dropout,
                                     image_size=image_size, dtype=dtype, **backbone_kwargs)

    # === Parameter groups and sharding of keras-hub's ViTBackbone ===
    def layer_id(self, path):
        """0 for the patch / position embeddings and class token, i for
        keras-hub's `transformer_block_{i}` (1-based), `num_layers + 1` after."""
        match = re.search(r"(^|/)transformer_block_(\d+)/", path)
        if match:
            return int(match.group(2))
        if re.search(r"(^|/)vit_patching_and_embedding/", path):
            return 0
        return self.num_layers + 1

    def no_weight_decay(self):
        """The class token and the position embedding (timm's `no_weight_decay`)."""
        return (r"class_token", r"position_embedding")

    @classmethod
    def get_layout_map(cls, device_mesh, model_parallel_dim_name="model"):
        """Megatron-style sharding of keras-hub ViT blocks: query / key / value
        and the first MLP layer by output, the attention output and the second
        MLP layer by input; the rest replicated."""
        m = model_parallel_dim_name
        layout = keras.distribution.LayoutMap(device_mesh)
        # mha/query/kernel (D, heads, head_dim), attention_output (heads, head_dim, D)
        layout[r".*/mha/(query|key|value)/kernel"] = (None, m, None)
        layout[r".*/mha/(query|key|value)/bias"] = (m, None)
        layout[r".*/mha/attention_output/kernel"] = (m, None, None)
        layout[r".*/mlp/dense_1/kernel"] = (None, m)
        layout[r".*/mlp/dense_1/bias"] = (m,)
        layout[r".*/mlp/dense_2/kernel"] = (m, None)
        return layout

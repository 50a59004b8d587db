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
from keras import layers, ops

from keras_har.data.normalization import HALF_MEAN, HALF_STD
from keras_har.models.mean_pooled_vit_classifier_preprocessor import (
    MeanPooledViTClassifierPreprocessor,
)
from keras_har.models.video_classifier import VideoClassifier
from keras_har.utils.preset_utils import resolve_num_classes

VIT_SMALL = dict(patch_size=16, num_layers=12, num_heads=6, hidden_dim=384, mlp_dim=1536)
VIT_LAYER_NORM_EPS = 1e-6  # timm's ViTs


@keras.saving.register_keras_serializable(package="keras_har")
class FoldFrames(layers.Layer):
    """(batch, frames, h, w, c) -> (batch * frames, h, w, c)."""

    def call(self, videos):
        return ops.reshape(videos, (-1,) + tuple(videos.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, frames = input_shape[:2]
        folded = None if batch is None or frames is None else batch * frames
        return (folded,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="keras_har")
class FrameMeanPooling(layers.Layer):
    """Class token of every frame, averaged over the frames of each clip.

    Called on `[tokens, videos]`: tokens `(batch * frames, tokens, dim)` from the
    backbone and the videos they came from (for the frame count).
    """

    def call(self, inputs):
        tokens, videos = inputs
        frames = ops.shape(videos)[1]
        cls = tokens[:, 0, :]
        cls = ops.reshape(cls, (-1, frames, cls.shape[-1]))
        return ops.mean(cls, axis=1)

    def compute_output_shape(self, input_shape):
        tokens_shape, videos_shape = input_shape
        return (videos_shape[0], tokens_shape[-1])


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
    default_mean = HALF_MEAN
    default_std = HALF_STD

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
        num_classes, labels = resolve_num_classes(num_classes, labels)
        if num_classes is None:
            raise ValueError("MeanPooledViTClassifier needs num_classes or labels.")
        if not getattr(backbone, "use_class_token", True):
            raise ValueError("MeanPooledViTClassifier pools the class token: the backbone needs one.")

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = self._default_preprocessor(
            preprocessor, tuple(backbone.image_shape[:2]), image_mean, image_std
        )
        policy = backbone.dtype_policy
        self.output_dropout = layers.Dropout(dropout, name="output_dropout", dtype=policy)
        self.predictions = layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="predictions",
            dtype=policy,
        )

        # === Functional model ===
        height, width, channels = backbone.image_shape
        videos = keras.Input(shape=(None, height, width, channels), name="videos")
        frames = FoldFrames(name="fold_frames", dtype=policy)(videos)
        tokens = backbone(frames)
        x = FrameMeanPooling(name="frame_mean", dtype=policy)([tokens, videos])
        x = self.output_dropout(x)
        outputs = self.predictions(x)
        super().__init__(inputs=videos, outputs=outputs, **kwargs)

        # === Config ===
        self.dropout = dropout
        self._init_video_classifier(num_classes, labels)

    def get_config(self):
        config = super().get_config()
        config.update({"dropout": self.dropout})
        return config

    @property
    def image_size(self):
        return tuple(self.backbone.image_shape[:2])

    @classmethod
    def from_scratch(
        cls,
        image_size=224,
        num_classes=None,
        labels=None,
        dropout=0.0,
        dtype=None,
        **backbone_kwargs,
    ):
        """A randomly initialised classifier; the backbone is ViT-S/16 unless
        `backbone_kwargs` (patch_size, num_layers, num_heads, hidden_dim,
        mlp_dim, ...) say otherwise."""
        kwargs = dict(VIT_SMALL, layer_norm_epsilon=VIT_LAYER_NORM_EPS)
        kwargs.update(backbone_kwargs)
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(image_size, image_size, 3), dtype=dtype, **kwargs
        )
        return cls(backbone, num_classes=num_classes, labels=labels, dropout=dropout)

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

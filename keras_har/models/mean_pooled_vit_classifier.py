"""The mean-pooled image-ViT baseline: a keras-hub `ViTBackbone` per frame.

Every frame of a clip goes through the image backbone (frames are folded into
the batch), the class-token feature after the final LayerNorm is averaged over
the frames, then dropout and a Dense head named `predictions`. With one frame
this is exactly timm's / keras-hub's image classifier; with T frames the
logits are those of the mean feature (so, the head being linear, the mean of
the per-frame logits).
"""

import json
import logging

import keras
import keras_hub
from keras import layers, ops

from keras_har.converters import timm_vit
from keras_har.converters.checkpoint import StateDict, assign, load_state_dict
from keras_har.models.video_classifier import VideoClassifier, resolve_num_classes

logger = logging.getLogger("keras_har")

# timm's augreg ViTs are trained on inputs scaled to [-1, 1].
VIT_MEAN = (0.5, 0.5, 0.5)
VIT_STD = (0.5, 0.5, 0.5)
VIT_SMALL = dict(patch_size=16, num_layers=12, num_heads=6, hidden_dim=384, mlp_dim=1536)


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
        image_mean, image_std: the normalisation inputs must have had
            (0.5 / 0.5 by default, as timm's augreg ViTs).

    Inputs are float videos `(batch, frames, height, width, 3)`, already
    normalised, with `height, width` the backbone's image size and any number
    of frames; outputs are logits `(batch, num_classes)`.

    Example:
    ```python
    model = MeanPooledViTClassifier.from_preset(
        "hf://timm/vit_small_patch16_224.augreg_in21k_ft_in1k", num_classes=51
    )
    logits = model(videos)  # (batch, 51)
    ```
    """

    backbone_cls = keras_hub.models.ViTBackbone

    def __init__(
        self,
        backbone,
        num_classes=None,
        labels=None,
        dropout=0.0,
        image_mean=VIT_MEAN,
        image_std=VIT_STD,
        preprocessor=None,
        **kwargs,
    ):
        num_classes, labels = resolve_num_classes(num_classes, labels)
        if num_classes is None:
            raise ValueError("MeanPooledViTClassifier needs num_classes or labels.")
        if not getattr(backbone, "use_class_token", True):
            raise ValueError("MeanPooledViTClassifier pools the class token: the backbone needs one.")

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
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
        self._init_video_classifier(num_classes, labels, image_mean, image_std)

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
        kwargs = dict(VIT_SMALL, layer_norm_epsilon=timm_vit.TIMM_LAYER_NORM_EPS)
        kwargs.update(backbone_kwargs)
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(image_size, image_size, 3), dtype=dtype, **kwargs
        )
        return cls(backbone, num_classes=num_classes, labels=labels, dropout=dropout)

    @classmethod
    def known_presets(cls):
        return {
            "vit_small_augreg_in21k_ft_in1k": {
                "handle": "hf://timm/vit_small_patch16_224.augreg_in21k_ft_in1k",
                "description": "timm ViT-S/16, ImageNet-21k pre-trained, ImageNet-1k fine-tuned "
                "(the seed's backbone).",
            },
        }

    @classmethod
    def _from_foreign_preset(
        cls,
        path,
        num_classes=None,
        labels=None,
        load_weights=True,
        dropout=0.0,
        image_size=None,
        num_heads=None,
        **backbone_overrides,
    ):
        """A timm ViT checkpoint (hub directory or state-dict file) -> classifier.

        `image_size` resizes the input (the position embedding is resampled
        bicubically); `num_heads` is needed only where neither the config nor
        the architecture name tells it. Other kwargs (e.g. `dropout_rate`,
        `dtype`) go to the `ViTBackbone`.
        """
        if timm_vit.is_transformers_vit(path):
            model = cls._from_transformers_vit(
                path, num_classes, labels, load_weights, dropout, **backbone_overrides
            )
            return _check_image_size(model, image_size, path)
        config, state = timm_vit.open_checkpoint(path)
        backbone_kwargs = timm_vit.backbone_kwargs_from_state(state, config, num_heads, image_size)
        backbone_kwargs.update(backbone_overrides)
        backbone = keras_hub.models.ViTBackbone(**backbone_kwargs)

        ckpt_classes = timm_vit.head_num_classes(state)
        num_classes, labels = resolve_num_classes(num_classes, labels)
        if num_classes is None:
            if ckpt_classes is None:
                raise ValueError(f"{path} has no classification head: pass num_classes or labels.")
            num_classes = ckpt_classes
        keep_head = ckpt_classes == num_classes
        if keep_head and labels is None:
            names = timm_vit.label_names(config)
            labels = names if names and len(names) == num_classes else None
        mean, std = timm_vit.normalization(config) or (VIT_MEAN, VIT_STD)
        model = cls(
            backbone, num_classes=num_classes, labels=labels, dropout=dropout,
            image_mean=mean, image_std=std,
        )
        if not load_weights:
            return model
        timm_vit.load_backbone_weights(backbone, state)
        if keep_head:
            timm_vit.load_head(model.predictions, state)
        else:
            if ckpt_classes is not None:
                logger.warning(
                    "%s: replacing the checkpoint's %d-way head with a new %d-way head.",
                    path, ckpt_classes, num_classes,
                )
            else:
                logger.info("%s: no head in the checkpoint; a new %d-way head.", path, num_classes)
            timm_vit.skip_head(state)
        state.check_all_used()
        return model

    @classmethod
    def _from_own_preset(cls, path, num_classes, labels, load_weights, image_size=None, **kwargs):
        model = super()._from_own_preset(path, num_classes, labels, load_weights, **kwargs)
        return _check_image_size(model, image_size, path)

    @classmethod
    def _from_transformers_vit(cls, path, num_classes, labels, load_weights, dropout, **kwargs):
        """A transformers `ViTModel` / `ViTForImageClassification` directory
        (e.g. google/vit-base-patch16-224): keras-hub converts the backbone;
        the `classifier` head is kept when its size fits."""
        backbone = keras_hub.models.ViTBackbone.from_preset(str(path), load_weights=load_weights, **kwargs)
        hf_config = json.loads((path / "config.json").read_text())
        state = StateDict(load_state_dict(path), source=str(path))
        ckpt_classes = int(state.tensors["classifier.weight"].shape[0]) if "classifier.weight" in state else None
        num_classes, labels = resolve_num_classes(num_classes, labels, default=ckpt_classes)
        if num_classes is None:
            raise ValueError(f"{path} has no classification head: pass num_classes or labels.")
        keep_head = ckpt_classes == num_classes
        id2label = hf_config.get("id2label") or {}
        if keep_head and labels is None and len(id2label) == num_classes:
            labels = [id2label.get(str(i), id2label.get(i)) for i in range(num_classes)]
        mean, std = timm_vit.hf_normalization(path) or (VIT_MEAN, VIT_STD)
        model = cls(backbone, num_classes=num_classes, labels=labels, dropout=dropout,
                    image_mean=mean, image_std=std)
        if load_weights and keep_head:
            dim = backbone.hidden_dim
            assign(model.predictions.kernel, state.take("classifier.weight", (num_classes, dim)).T,
                   "classifier.weight")
            assign(model.predictions.bias, state.take("classifier.bias", (num_classes,)), "classifier.bias")
        elif ckpt_classes is not None:
            logger.warning("%s: replacing the checkpoint's %d-way head with a new %d-way head.",
                           path, ckpt_classes, num_classes)
        return model


def _check_image_size(model, image_size, path):
    """Only timm checkpoints are resized on load; elsewhere a size must match."""
    if image_size is None:
        return model
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if size != model.image_size:
        raise ValueError(
            f"{path} takes {model.image_size[0]}x{model.image_size[1]} frames; "
            f"image_size={image_size} is only supported when converting a timm checkpoint."
        )
    return model

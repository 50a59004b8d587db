"""VideoMAE encoder as a keras-hub `Backbone`.

Follows transformers' `VideoMAEModel` (and the original MCG-NJU code) exactly:
tubelet patch embedding (a Conv3D over tubelet x patch x patch), a fixed
sinusoidal position table, pre-norm transformer blocks whose attention has a
query and a value bias but no key bias, an MLP, and a final LayerNorm only when
`use_mean_pooling` is off (with mean pooling the norm lives in the classifier,
as `fc_norm`). The output is the token sequence, `(batch, tokens, hidden_dim)`:
the same tensor as transformers' `last_hidden_state`.
"""

import re

import keras
from keras import layers
from keras_hub.models import Backbone

from keras_har.layers import SinusoidalPositionEmbedding
from keras_har.models.architectures import architecture_config
from keras_har.models.videomae.videomae_layers import transformer_blocks
from keras_har.models.videomae.videomae_presets import VIDEOMAE_ARCHITECTURES
from keras_har.utils import preset_utils

# Argument names of configs saved by earlier versions -> today's.
LEGACY_CONFIG_NAMES = {
    "hidden_size": "hidden_dim",
    "intermediate_size": "mlp_dim",
    "hidden_act": "activation",
    "layer_norm_eps": "layer_norm_epsilon",
    "hidden_dropout": "dropout_rate",
}


def to_pair(value):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"Expected an int or a (height, width) pair, got {value!r}.")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def rename_legacy_arguments(config, names):
    """`config` with the keys of `names` renamed (a key given under both names is an error)."""
    config = dict(config)
    for old, new in names.items():
        if old in config:
            if new in config:
                raise ValueError(f"Config has both {old!r} and {new!r}; {old!r} is the old name of {new!r}.")
            config[new] = config.pop(old)
    return config


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEBackbone(Backbone):
    """VideoMAE encoder: videos `(batch, frames, height, width, channels)` -> tokens.

    Args:
        patch_size: spatial patch size.
        hidden_dim, num_layers, num_heads, mlp_dim: transformer sizes (keras-hub's
            `ViTBackbone` names).
        image_size: int or (height, width) of the input frames.
        num_channels: input channels (3).
        num_frames: frames per clip; a multiple of `tubelet_size`.
        tubelet_size: frames per tubelet (temporal patch size).
        activation: MLP activation ("gelu", "gelu_new", ..., see
            `videomae_layers.ACTIVATIONS`).
        use_qv_bias: query and value biases (the key has none).
        layer_norm_epsilon: epsilon of the block norms and the final norm.
        use_mean_pooling: when False the encoder ends with a LayerNorm (the
            classifier then takes the first token); when True it does not (the
            classifier mean-pools and applies its own `fc_norm`).
        dropout_rate, attention_dropout: dropout rates.
        drop_path_rate: stochastic depth, rising linearly from 0 at the first
            block to this value at the last (0.1 in the official ViT-B fine-tuning).
        dtype: a dtype or `keras.DTypePolicy` (e.g. "mixed_bfloat16").

    The sizes of VideoMAE's ViT-S/B/L/H (and a toy "tiny") are named in
    `VIDEOMAE_ARCHITECTURES`: `VideoMAEBackbone.from_architecture("base",
    num_frames=16)`.
    """

    def __init__(
        self,
        *,
        patch_size,
        hidden_dim,
        num_layers,
        num_heads,
        mlp_dim,
        image_size=224,
        num_channels=3,
        num_frames=16,
        tubelet_size=2,
        activation="gelu",
        use_qv_bias=True,
        layer_norm_epsilon=1e-12,
        use_mean_pooling=True,
        dropout_rate=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.0,
        dtype=None,
        **kwargs,
    ):
        height, width = to_pair(image_size)
        if height % patch_size or width % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}.")
        if num_frames % tubelet_size:
            raise ValueError(f"num_frames {num_frames} is not a multiple of tubelet_size {tubelet_size}.")
        num_tokens = (num_frames // tubelet_size) * (height // patch_size) * (width // patch_size)

        # === Layers ===
        self.patch_embedding = layers.Conv3D(
            hidden_dim,
            kernel_size=(tubelet_size, patch_size, patch_size),
            strides=(tubelet_size, patch_size, patch_size),
            padding="valid",
            name="patch_embedding",
            dtype=dtype,
        )
        self.flatten_tubelets = layers.Reshape((num_tokens, hidden_dim), name="flatten_tubelets", dtype=dtype)
        self.position_embedding = SinusoidalPositionEmbedding(name="position_embedding", dtype=dtype)
        self.transformer_layers = transformer_blocks(
            num_layers,
            name="transformer_layer",
            drop_path_rate=drop_path_rate,
            dtype=dtype,
            hidden_dim=hidden_dim,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            activation=activation,
            use_qv_bias=use_qv_bias,
            layer_norm_epsilon=layer_norm_epsilon,
            dropout_rate=dropout_rate,
            attention_dropout=attention_dropout,
        )
        self.final_norm = (
            None
            if use_mean_pooling
            else layers.LayerNormalization(epsilon=layer_norm_epsilon, name="final_norm", dtype=dtype)
        )

        # === Functional model ===
        videos = keras.Input(shape=(num_frames, height, width, num_channels), name="videos")
        outputs = self.encode(self.embed(videos))
        super().__init__(inputs=videos, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.image_size = (height, width)
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.num_frames = num_frames
        self.tubelet_size = tubelet_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.activation = activation
        self.use_qv_bias = use_qv_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_mean_pooling = use_mean_pooling
        self.dropout_rate = dropout_rate
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.num_tokens = num_tokens

    # === The two stages (the pre-trainer runs the encoder on a token subset) ===
    def embed(self, videos):
        """Videos -> tokens `(batch, num_tokens, hidden_dim)`: the tubelet
        embedding plus the fixed position table."""
        return self.position_embedding(self.flatten_tubelets(self.patch_embedding(videos)))

    def encode(self, tokens):
        """The transformer blocks (and the final norm, if any) on any number of tokens."""
        for block in self.transformer_layers:
            tokens = block(tokens)
        if self.final_norm is not None:
            tokens = self.final_norm(tokens)
        return tokens

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": list(self.image_size),
                "patch_size": self.patch_size,
                "num_channels": self.num_channels,
                "num_frames": self.num_frames,
                "tubelet_size": self.tubelet_size,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "activation": self.activation,
                "use_qv_bias": self.use_qv_bias,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "use_mean_pooling": self.use_mean_pooling,
                "dropout_rate": self.dropout_rate,
                "attention_dropout": self.attention_dropout,
                "drop_path_rate": self.drop_path_rate,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Also reads configs saved under the earlier, transformers-style
        argument names (`hidden_size`, `intermediate_size`, ...)."""
        return super().from_config(rename_legacy_arguments(config, LEGACY_CONFIG_NAMES))

    @classmethod
    def from_architecture(cls, name, **overrides):
        """A randomly initialised encoder of the named size
        (`VIDEOMAE_ARCHITECTURES`: tiny, small, base, large, huge); `overrides`
        are other constructor arguments (`num_frames=8`, `image_size=160`,
        `drop_path_rate=0.1`, ...) or replace a size."""
        return cls(**architecture_config(VIDEOMAE_ARCHITECTURES, name, "VideoMAE", **overrides))

    # === Parameter groups and sharding (asked for by keras_har.training) ===
    def layer_id(self, path):
        """Layer-wise decay id of a variable path: 0 for the patch embedding,
        i + 1 for block i, `num_layers + 1` for anything after the blocks."""
        match = re.search(r"(^|/)transformer_layer_(\d+)/", path)
        if match:
            return int(match.group(2)) + 1
        if re.search(r"(^|/)patch_embedding/", path):
            return 0
        return self.num_layers + 1

    def no_weight_decay(self):
        """Variable-path regexes excluded from weight decay besides every 0-/1-D
        variable: none (the position table is a constant, not a weight)."""
        return ()

    @staticmethod
    def get_layout_map(device_mesh, model_parallel_dim_name="model"):
        """A `keras.distribution.LayoutMap` sharding, Megatron style, the first
        matmul of attention and MLP by output columns and the second by input
        rows over `model_parallel_dim_name`; everything else is replicated."""
        m = model_parallel_dim_name
        layout = keras.distribution.LayoutMap(device_mesh)
        layout[r".*/attention/qkv/kernel"] = (None, m)  # (D, 3D)
        layout[r".*/attention/proj/kernel"] = (m, None)
        layout[r".*/fc1/kernel"] = (None, m)
        layout[r".*/fc1/bias"] = (m,)
        layout[r".*/fc2/kernel"] = (m, None)
        return layout

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """The encoder from a registered name (`VideoMAEBackbone.presets`),
        `hf://org/name`, a Hugging Face VideoMAE directory (any of its model
        classes; the head and the pre-training decoder are left out) or a
        directory written by `save_to_preset`."""
        return preset_utils.backbone_from_preset(cls, preset, load_weights=load_weights, **kwargs)

"""VideoMAE encoder as a keras-hub `Backbone`.

Follows transformers' `VideoMAEModel` (and the original MCG-NJU code) exactly:
tubelet patch embedding (a Conv3D over tubelet x patch x patch), a fixed
sinusoidal position table, pre-norm transformer blocks whose attention has a
query and a value bias but no key bias, an MLP, and a final LayerNorm only when
`use_mean_pooling` is off (with mean pooling the norm lives in the classifier,
as `fc_norm`). The output is the token sequence, `(batch, tokens, hidden)`:
the same tensor as transformers' `last_hidden_state`.
"""

import re

import keras
from keras import layers, ops
from keras_hub.models import Backbone

from keras_har.layers import DropPath, SinusoidalPositionEmbedding
from keras_har.utils import preset_utils

# transformers' ACT2FN names -> Keras activations.
ACTIVATIONS = {
    "gelu": lambda x: keras.activations.gelu(x, approximate=False),
    "gelu_new": lambda x: keras.activations.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: keras.activations.gelu(x, approximate=True),
    "gelu_fast": lambda x: keras.activations.gelu(x, approximate=True),
    "quick_gelu": lambda x: x * ops.sigmoid(1.702 * x),
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
    "swish": keras.activations.silu,
}


def get_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown hidden_act {name!r}; known: {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def to_pair(value):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"Expected an int or a (height, width) pair, got {value!r}.")
        return int(value[0]), int(value[1])
    return int(value), int(value)


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEAttention(layers.Layer):
    """Multi-head self-attention with a fused qkv projection.

    The key bias is a constant zero (VideoMAE has none); the query and value
    biases are weights when `use_qv_bias`. Attention runs through
    `keras.ops.dot_product_attention` (fused kernels where the backend has them).
    """

    def __init__(self, hidden_size, num_heads, use_qv_bias=True, attention_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}.")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.use_qv_bias = use_qv_bias
        self.attention_dropout = attention_dropout
        self.qkv = layers.Dense(3 * hidden_size, use_bias=False, name="qkv", dtype=self.dtype_policy)
        self.proj = layers.Dense(hidden_size, name="proj", dtype=self.dtype_policy)
        self.dropout = layers.Dropout(attention_dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.qkv.build(input_shape)
        if self.use_qv_bias:
            self.q_bias = self.add_weight(name="q_bias", shape=(self.hidden_size,), initializer="zeros")
            self.v_bias = self.add_weight(name="v_bias", shape=(self.hidden_size,), initializer="zeros")
        self.proj.build(input_shape[:-1] + (self.hidden_size,))
        self.built = True

    def call(self, x, training=None):
        batch, tokens = ops.shape(x)[0], ops.shape(x)[1]
        qkv = self.qkv(x)
        if self.use_qv_bias:
            q_bias = ops.cast(self.q_bias, qkv.dtype)
            v_bias = ops.cast(self.v_bias, qkv.dtype)
            qkv = qkv + ops.concatenate([q_bias, ops.zeros_like(q_bias), v_bias])
        qkv = ops.reshape(qkv, (batch, tokens, 3, self.num_heads, self.head_dim))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.attention_dropout > 0 and training:
            # Dropout on the attention probabilities needs them explicitly.
            scores = ops.einsum("bqhd,bkhd->bhqk", q, k) * (self.head_dim**-0.5)
            probs = self.dropout(ops.softmax(scores, axis=-1), training=training)
            out = ops.einsum("bhqk,bkhd->bqhd", probs, v)
        else:
            out = ops.dot_product_attention(q, k, v)
        out = ops.reshape(out, (batch, tokens, self.hidden_size))
        return self.proj(out)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "num_heads": self.num_heads,
                "use_qv_bias": self.use_qv_bias,
                "attention_dropout": self.attention_dropout,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAETransformerBlock(layers.Layer):
    """Pre-norm block: x + attn(norm1(x)); x + mlp(norm2(x)), with drop-path."""

    def __init__(
        self,
        hidden_size,
        num_heads,
        intermediate_size,
        hidden_act="gelu",
        use_qv_bias=True,
        layer_norm_eps=1e-12,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.use_qv_bias = use_qv_bias
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        policy = self.dtype_policy
        self.norm1 = layers.LayerNormalization(epsilon=layer_norm_eps, name="norm1", dtype=policy)
        self.attention = VideoMAEAttention(
            hidden_size, num_heads, use_qv_bias, attention_dropout, name="attention", dtype=policy
        )
        self.norm2 = layers.LayerNormalization(epsilon=layer_norm_eps, name="norm2", dtype=policy)
        self.fc1 = layers.Dense(intermediate_size, name="fc1", dtype=policy)
        self.fc2 = layers.Dense(hidden_size, name="fc2", dtype=policy)
        self.activation = get_activation(hidden_act)
        self.dropout = layers.Dropout(hidden_dropout, dtype=policy)
        self.drop_path = DropPath(drop_path_rate, dtype=policy)

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.attention.build(input_shape)
        self.norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build(input_shape[:-1] + (self.intermediate_size,))
        self.built = True

    def call(self, x, training=None):
        h = self.dropout(self.attention(self.norm1(x), training=training), training=training)
        x = x + self.drop_path(h, training=training)
        h = self.activation(self.fc1(self.norm2(x)))
        h = self.dropout(self.fc2(h), training=training)
        return x + self.drop_path(h, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "num_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_act": self.hidden_act,
                "use_qv_bias": self.use_qv_bias,
                "layer_norm_eps": self.layer_norm_eps,
                "hidden_dropout": self.hidden_dropout,
                "attention_dropout": self.attention_dropout,
                "drop_path_rate": self.drop_path_rate,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEBackbone(Backbone):
    """VideoMAE encoder: videos `(batch, frames, height, width, channels)` -> tokens.

    Args:
        image_size: int or (height, width) of the input frames.
        patch_size: spatial patch size.
        num_channels: input channels (3).
        num_frames: frames per clip; a multiple of `tubelet_size`.
        tubelet_size: frames per tubelet (temporal patch size).
        hidden_size, num_layers, num_heads, intermediate_size: transformer sizes.
        hidden_act: MLP activation (transformers' names: "gelu", "gelu_new", ...).
        use_qv_bias: query and value biases (transformers' `qv_bias` / `qkv_bias`).
        layer_norm_eps: epsilon of the block norms and the final norm.
        use_mean_pooling: when False the encoder ends with a LayerNorm (the
            classifier then takes the first token); when True it does not (the
            classifier mean-pools and applies its own `fc_norm`).
        hidden_dropout, attention_dropout: dropout rates.
        drop_path_rate: stochastic depth, rising linearly from 0 at the first
            block to this value at the last (0.1 in the official ViT-B fine-tuning).
        dtype: a dtype or `keras.DTypePolicy` (e.g. "mixed_bfloat16").
    """

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        num_channels=3,
        num_frames=16,
        tubelet_size=2,
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        use_qv_bias=True,
        layer_norm_eps=1e-12,
        use_mean_pooling=True,
        hidden_dropout=0.0,
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
            hidden_size,
            kernel_size=(tubelet_size, patch_size, patch_size),
            strides=(tubelet_size, patch_size, patch_size),
            padding="valid",
            name="patch_embedding",
            dtype=dtype,
        )
        self.position_embedding = SinusoidalPositionEmbedding(name="position_embedding", dtype=dtype)
        self.transformer_layers = [
            VideoMAETransformerBlock(
                hidden_size=hidden_size,
                num_heads=num_heads,
                intermediate_size=intermediate_size,
                hidden_act=hidden_act,
                use_qv_bias=use_qv_bias,
                layer_norm_eps=layer_norm_eps,
                hidden_dropout=hidden_dropout,
                attention_dropout=attention_dropout,
                drop_path_rate=drop_path_rate * i / max(1, num_layers - 1),
                name=f"transformer_layer_{i}",
                dtype=dtype,
            )
            for i in range(num_layers)
        ]
        self.final_norm = (
            None
            if use_mean_pooling
            else layers.LayerNormalization(epsilon=layer_norm_eps, name="final_norm", dtype=dtype)
        )

        # === Functional model ===
        videos = keras.Input(shape=(num_frames, height, width, num_channels), name="videos")
        x = self.patch_embedding(videos)
        x = layers.Reshape((num_tokens, hidden_size), name="flatten_tubelets", dtype=dtype)(x)
        x = self.position_embedding(x)
        for block in self.transformer_layers:
            x = block(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        super().__init__(inputs=videos, outputs=x, dtype=dtype, **kwargs)

        # === Config ===
        self.image_size = (height, width)
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.num_frames = num_frames
        self.tubelet_size = tubelet_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.use_qv_bias = use_qv_bias
        self.layer_norm_eps = layer_norm_eps
        self.use_mean_pooling = use_mean_pooling
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.num_tokens = num_tokens

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": list(self.image_size),
                "patch_size": self.patch_size,
                "num_channels": self.num_channels,
                "num_frames": self.num_frames,
                "tubelet_size": self.tubelet_size,
                "hidden_size": self.hidden_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_act": self.hidden_act,
                "use_qv_bias": self.use_qv_bias,
                "layer_norm_eps": self.layer_norm_eps,
                "use_mean_pooling": self.use_mean_pooling,
                "hidden_dropout": self.hidden_dropout,
                "attention_dropout": self.attention_dropout,
                "drop_path_rate": self.drop_path_rate,
            }
        )
        return config

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

"""VideoMAE's layers: attention, the pre-norm transformer block, and the
stack of blocks the encoder and the pre-training decoder are made of.

Follows transformers' `VideoMAEModel` (and the original MCG-NJU code): the
attention has a query and a value bias but no key bias, the block is pre-norm
with an MLP and stochastic depth.
"""

import keras
from keras import layers, ops

from keras_har.layers import DropPath

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
        raise ValueError(f"Unknown activation {name!r}; known: {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEAttention(layers.Layer):
    """Multi-head self-attention with a fused qkv projection.

    The key bias is a constant zero (VideoMAE has none); the query and value
    biases are weights when `use_qv_bias`. Attention runs through
    `keras.ops.dot_product_attention` (fused kernels where the backend has them).
    """

    def __init__(self, hidden_dim, num_heads, use_qv_bias=True, attention_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not a multiple of num_heads {num_heads}.")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.use_qv_bias = use_qv_bias
        self.attention_dropout = attention_dropout
        self.qkv = layers.Dense(3 * hidden_dim, use_bias=False, name="qkv", dtype=self.dtype_policy)
        self.proj = layers.Dense(hidden_dim, name="proj", dtype=self.dtype_policy)
        self.dropout = layers.Dropout(attention_dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.qkv.build(input_shape)
        if self.use_qv_bias:
            self.q_bias = self.add_weight(name="q_bias", shape=(self.hidden_dim,), initializer="zeros")
            self.v_bias = self.add_weight(name="v_bias", shape=(self.hidden_dim,), initializer="zeros")
        self.proj.build(input_shape[:-1] + (self.hidden_dim,))
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
        out = ops.reshape(out, (batch, tokens, self.hidden_dim))
        return self.proj(out)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
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
        hidden_dim,
        num_heads,
        mlp_dim,
        activation="gelu",
        use_qv_bias=True,
        layer_norm_epsilon=1e-12,
        dropout_rate=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.activation = activation
        self.use_qv_bias = use_qv_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout_rate = dropout_rate
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        policy = self.dtype_policy
        self.norm1 = layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm1", dtype=policy)
        self.attention = VideoMAEAttention(
            hidden_dim, num_heads, use_qv_bias, attention_dropout, name="attention", dtype=policy
        )
        self.norm2 = layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm2", dtype=policy)
        self.fc1 = layers.Dense(mlp_dim, name="fc1", dtype=policy)
        self.fc2 = layers.Dense(hidden_dim, name="fc2", dtype=policy)
        self.activation_fn = get_activation(activation)
        self.dropout = layers.Dropout(dropout_rate, dtype=policy)
        self.drop_path = DropPath(drop_path_rate, dtype=policy)

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.attention.build(input_shape)
        self.norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build(input_shape[:-1] + (self.mlp_dim,))
        self.built = True

    def call(self, x, training=None):
        h = self.dropout(self.attention(self.norm1(x), training=training), training=training)
        x = x + self.drop_path(h, training=training)
        h = self.activation_fn(self.fc1(self.norm2(x)))
        h = self.dropout(self.fc2(h), training=training)
        return x + self.drop_path(h, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "activation": self.activation,
                "use_qv_bias": self.use_qv_bias,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "dropout_rate": self.dropout_rate,
                "attention_dropout": self.attention_dropout,
                "drop_path_rate": self.drop_path_rate,
            }
        )
        return config


def transformer_blocks(num_layers, name, drop_path_rate=0.0, dtype=None, **block_kwargs):
    """`num_layers` `VideoMAETransformerBlock`s named `{name}_{i}`, stochastic
    depth rising linearly from 0 at the first to `drop_path_rate` at the last
    (the encoder's schedule; the decoder has none). `block_kwargs` are the
    block's arguments (`hidden_dim`, `num_heads`, `mlp_dim`, ...)."""
    return [
        VideoMAETransformerBlock(
            drop_path_rate=drop_path_rate * i / max(1, num_layers - 1),
            name=f"{name}_{i}",
            dtype=dtype,
            **block_kwargs,
        )
        for i in range(num_layers)
    ]

"""Layers that split a token sequence by a boolean mask with static shapes.

A mask `(batch, tokens)` that hides exactly `num_masked` tokens of every
sample is turned into two index tensors: the visible tokens in their original
order, then the masked ones in theirs (what transformers' `x[~mask]` and
`x[mask]` select). Sorting the key `mask * tokens + position` gives both at
once, with static shapes on every backend.
"""

import keras
from keras import ops

from keras_har.layers.sinusoidal_position_embedding import sinusoid_table


def split_indices(bool_masked_pos, num_masked):
    """(visible indices `(B, N - M)`, masked indices `(B, M)`) of a mask `(B, N)`."""
    mask = ops.cast(bool_masked_pos, "int32")
    num_tokens = ops.shape(mask)[1]
    key = mask * num_tokens + ops.arange(num_tokens, dtype="int32")[None, :]
    order = ops.cast(ops.argsort(key, axis=1), "int32")
    num_visible = num_tokens - num_masked
    return order[:, :num_visible], order[:, num_visible:]


def gather_tokens(tokens, indices):
    """`tokens (B, N, ...)` at `indices (B, K)` -> `(B, K, ...)`."""
    extra = len(tokens.shape) - 2
    expanded = ops.reshape(indices, tuple(ops.shape(indices)) + (1,) * extra)
    return ops.take_along_axis(tokens, expanded, axis=1)


@keras.saving.register_keras_serializable(package="keras_har")
class MaskedTokenSplit(keras.layers.Layer):
    """`bool_masked_pos (B, N)` -> (visible indices, masked indices), int32."""

    def __init__(self, num_masked, **kwargs):
        super().__init__(**kwargs)
        self.num_masked = int(num_masked)

    def call(self, bool_masked_pos):
        return split_indices(bool_masked_pos, self.num_masked)

    def compute_output_spec(self, bool_masked_pos):
        batch, tokens = bool_masked_pos.shape
        return (
            keras.KerasTensor((batch, tokens - self.num_masked), dtype="int32"),
            keras.KerasTensor((batch, self.num_masked), dtype="int32"),
        )

    def get_config(self):
        config = super().get_config()
        config["num_masked"] = self.num_masked
        return config


@keras.saving.register_keras_serializable(package="keras_har")
class GatherTokens(keras.layers.Layer):
    """`(tokens (B, N, D), indices (B, K))` -> `(B, K, D)`."""

    def call(self, tokens, indices):
        return gather_tokens(tokens, indices)

    def compute_output_shape(self, tokens_shape, indices_shape):
        return (tokens_shape[0], indices_shape[1]) + tuple(tokens_shape[2:])


@keras.saving.register_keras_serializable(package="keras_har")
class MaskTokenFill(keras.layers.Layer):
    """The decoder's input: visible tokens, then a learned mask token for every
    masked position, each plus the fixed sinusoidal table at its position.

    Call with `(visible (B, N - M, D), visible_indices, masked_indices)`; returns
    `(B, N, D)` in that order (visible first, masked last), as transformers'
    `VideoMAEForPreTraining` builds it. `num_tokens` sizes the table.
    """

    def __init__(self, num_tokens, **kwargs):
        super().__init__(**kwargs)
        self.num_tokens = int(num_tokens)

    def build(self, visible_shape, visible_indices_shape=None, masked_indices_shape=None):
        dim = visible_shape[-1]
        self.mask_token = self.add_weight(
            name="mask_token",
            shape=(1, 1, dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self._table = ops.convert_to_tensor(sinusoid_table(self.num_tokens, dim)[None])
        self.built = True

    def call(self, visible, visible_indices, masked_indices):
        table = ops.cast(self._table, visible.dtype)
        batch = ops.shape(visible)[0]
        table = ops.broadcast_to(table, (batch,) + tuple(table.shape[1:]))
        visible = visible + gather_tokens(table, visible_indices)
        masked = ops.cast(self.mask_token, visible.dtype) + gather_tokens(table, masked_indices)
        return ops.concatenate([visible, masked], axis=1)

    def compute_output_shape(self, visible_shape, visible_indices_shape=None, masked_indices_shape=None):
        return (visible_shape[0], self.num_tokens, visible_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["num_tokens"] = self.num_tokens
        return config

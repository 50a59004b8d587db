import keras
import numpy as np
from keras import ops


def sinusoid_table(num_positions, dim):
    """The fixed sin-cos table of "Attention is all you need" (VideoMAE's).

    Row p, column j: p / 10000^(2*(j//2)/dim), sine on even and cosine on odd
    columns: the same values as transformers' `get_sinusoid_encoding_table`.
    """
    positions = np.arange(num_positions, dtype=np.float64)[:, None]
    exponents = 2 * (np.arange(dim) // 2) / dim
    angles = positions / np.power(10000.0, exponents)[None, :]
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return angles.astype("float32")


@keras.saving.register_keras_serializable(package="keras_har")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Adds a fixed sinusoidal position table to `(batch, tokens, dim)`.

    The table is a constant computed from the shape, not a weight: it is neither
    trained nor saved, like VideoMAE's.
    """

    def build(self, input_shape):
        num_positions, dim = input_shape[-2], input_shape[-1]
        self._table = ops.convert_to_tensor(sinusoid_table(num_positions, dim)[None])
        self.built = True

    def call(self, inputs):
        return inputs + ops.cast(self._table, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

"""Reusable Keras layers (backend-agnostic: keras.ops only)."""

from keras_har.layers.drop_path import DropPath
from keras_har.layers.sinusoidal_position_embedding import SinusoidalPositionEmbedding
from keras_har.layers.masked_tokens import GatherTokens, MaskedTokenSplit, MaskTokenFill

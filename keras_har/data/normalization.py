"""Pixel normalisation: the constants and the one fast implementation.

A model's preprocessor (`keras_har.models.VideoClassifierPreprocessor`) holds
the normalisation as keras-hub's `scale` / `offset` (`x * scale + offset` on
0-255 pixels); the loaders build their lookup table from the same numbers
(`mean_std(scale, offset)`), so the two never disagree. Imports no Keras.
"""

import cv2
import numpy as np

# ImageNet's mean / std: VideoMAE's normalisation (`VideoMAEVideoConverter`)
# and the loaders' default when no model's is given.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def scale_offset(mean, std):
    """Per-channel `(scale, offset)` with `x * scale + offset == (x / 255 - mean) / std`."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if mean.shape != (3,) or std.shape != (3,) or (std <= 0).any():
        raise ValueError(f"mean and std need 3 values each, std > 0; got {tuple(mean)} and {tuple(std)}.")
    return tuple(float(v) for v in 1.0 / (255.0 * std)), tuple(float(v) for v in -mean / std)


def mean_std(scale, offset):
    """The inverse of `scale_offset`: `(mean, std)` on [0, 1] pixels."""
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (3,))
    offset = np.broadcast_to(np.asarray(offset, dtype=np.float64), (3,))
    std = 1.0 / (255.0 * scale)
    return tuple(float(v) for v in -offset * std), tuple(float(v) for v in std)


def normalize(frames, mean, std):
    """uint8 RGB `(..., 3)` -> float32 ((x / 255) - mean) / std, channels last.

    One table lookup per pixel (`cv2.LUT` with a 256-entry float table per
    channel) instead of the arithmetic on every pixel.
    """
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    values = np.arange(256, dtype=np.float64)[:, None] / 255.0
    table = ((values - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)).astype(np.float32)
    out = cv2.LUT(frames.reshape(-1, frames.shape[-2], 3), table.reshape(256, 1, 3))
    return out.reshape(frames.shape)

"""The mean-pooled ViT's layers: frames folded into the batch, class tokens averaged per clip."""

import keras
from keras import layers, ops


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

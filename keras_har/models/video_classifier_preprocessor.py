"""`VideoClassifierPreprocessor`: what turns raw video frames into model inputs."""

import keras
from keras_hub.models import Preprocessor

from keras_har.models.video_converter import NormalizedVideoConverter


def is_raw_video(x):
    """Integer frames (uint8 from a decoder) are raw; floats are taken as
    already normalised (what keras_har's loaders yield)."""
    return "int" in keras.backend.standardize_dtype(x.dtype)


@keras.saving.register_keras_serializable(package="keras_har")
class VideoClassifierPreprocessor(Preprocessor):
    """The preprocessor of every keras-har video classifier (keras-hub's Task
    applies it in `fit`, `predict`, `evaluate` and `*_on_batch`).

    Integer frames `(batch, frames, height, width, 3)` (uint8 as decoded) go
    through the `video_converter`: resize to the model's frame size and
    normalise with the checkpoint's mean / std. Float inputs pass unchanged:
    they are taken as already normalised, which is what `keras_har.data`
    loaders yield (their lookup table is built from this preprocessor's
    `image_mean` / `image_std`), so `model.fit(loader...)` never normalises
    twice. `y` and `sample_weight` pass through.

    Example:
    ```python
    probs = classifier.predict(uint8_frames)  # (B, T, H, W, 3) uint8, any H x W
    ```
    """

    video_converter_cls = NormalizedVideoConverter

    def __init__(self, video_converter=None, **kwargs):
        super().__init__(**kwargs)
        self.video_converter = video_converter
        self.built = True  # no weights (see NormalizedVideoConverter)

    @classmethod
    def from_normalization(cls, image_size, mean, std):
        """A preprocessor whose converter resizes to `image_size` and
        normalises with `mean` / `std`."""
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        return cls(video_converter=cls.video_converter_cls(image_size=size, mean=mean, std=std))

    @property
    def image_mean(self):
        return self.video_converter.mean

    @property
    def image_std(self):
        return self.video_converter.std

    def call(self, x, y=None, sample_weight=None):
        if self.video_converter is not None and is_raw_video(x):
            x = self.video_converter(x)
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

"""`NormalizedVideoConverter`: keras-hub's `VideoConverter` set by mean / std."""

import keras
from keras_hub.layers import VideoConverter

from keras_har.data.normalization import scale_offset


@keras.saving.register_keras_serializable(package="keras_har")
class NormalizedVideoConverter(VideoConverter):
    """Frames `(batch, frames, height, width, 3)` on 0-255 -> resized to
    `image_size` (centre-cropped to its aspect ratio first) and normalised
    as `(x / 255 - mean) / std`, i.e. keras-hub's `scale` / `offset`.

    Args:
        image_size: `(height, width)` of the model's frames.
        mean, std: per-channel normalisation on [0, 1] pixels (the
            checkpoint's `preprocessor_config.json` when it has one); unset,
            the family's `default_mean` / `default_std`.

    The one place a model's normalisation is decided: each family's converter
    subclass sets its defaults, and the classifiers, the pre-trainer and the
    loaders (through `image_mean` / `image_std`) read it from here.
    """

    default_mean = None
    default_std = None

    def __init__(self, image_size=None, mean=None, std=None, **kwargs):
        if mean is None and std is None:
            mean, std = self.default_mean, self.default_std
        if mean is not None and std is not None:
            kwargs["scale"], kwargs["offset"] = scale_offset(mean, std)
        super().__init__(image_size=image_size, **kwargs)
        self.mean = None if mean is None else tuple(float(v) for v in mean)
        self.std = None if std is None else tuple(float(v) for v in std)
        # No weights. Unbuilt, Keras would re-run its symbolic build (taking a
        # batch from the data) on every `evaluate` of a model holding it.
        self.built = True
        self.image_converter.resizing.built = True

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean, "std": self.std})
        config.pop("scale", None)
        config.pop("offset", None)
        if config.get("image_size") is not None:
            config["image_size"] = list(config["image_size"])
        return config

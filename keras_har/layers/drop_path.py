import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_har")
class DropPath(keras.layers.Layer):
    """Stochastic depth: drop the whole residual branch per sample in training.

    Kept samples are scaled by 1 / (1 - rate), as timm's `DropPath` does.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.built = True  # no weights
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, dtype=inputs.dtype, seed=self.seed_generator)
        mask = ops.cast(noise < keep, inputs.dtype)
        return inputs * mask / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config

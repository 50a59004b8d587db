"""keras-har: video action recognition in Keras 3 on JAX, PyTorch and TensorFlow."""

__version__ = "0.1.0"

"""keras-har: video action recognition in Keras 3 on JAX, PyTorch and TensorFlow."""

__version__ = "0.1.0"

# Loaded on first use, so that `import keras_har` (and the `keras-har --help`
# command) stays light: no Keras, keras-hub or TensorFlow until needed.
_LAZY = {
    "evaluate": ("keras_har.evaluation", "evaluate"),
    "load_classifier": ("keras_har.models.auto", "load_classifier"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_har' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))

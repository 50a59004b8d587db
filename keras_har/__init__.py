"""keras-har: video action recognition in Keras 3 on JAX, PyTorch and TensorFlow."""

import os as _os

__version__ = "0.1.0"

# Checkpoints are written to temporary names and committed by renames, and a
# run directory has its own lock (keras_har.training.run_lock), so HDF5's own
# file locks protect nothing here; they do fail a read of a file whose inode
# an interrupted save in the same process left open ("unable to lock file,
# errno = 11"). Off unless the user chose otherwise (read when HDF5 starts).
_os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

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

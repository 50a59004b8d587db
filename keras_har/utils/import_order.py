"""The one import-order workaround keras-har needs, and loading the backend.

triton (pulled in by torch's CUDA wheels and imported by `torch._dynamo`)
crashes the process when it is loaded after TensorFlow, which keras-hub
imports. Loading it first avoids that; anything that may bring both torch
(transformers, timm, the torch backend) and TensorFlow into one process
calls this before importing keras-hub or TensorFlow.
"""

import contextlib


def load_torch_before_tensorflow():
    """Import `torch._dynamo` now, when torch is installed (a no-op otherwise)."""
    try:
        import torch._dynamo  # noqa: F401
    except ImportError:
        pass


def load_backend():
    """Import Keras (its backend) and keras-hub -- which imports TensorFlow --
    with TensorFlow's start-up lines on file descriptor 2 silenced (under
    torch, torch first), and HDF5 started without its own file locks (see
    `hdf5_without_file_locks`). What a command or a recipe calls before its
    first model."""
    import os

    from keras_har.utils.terminal import quiet_native_stderr

    with quiet_native_stderr(), hdf5_without_file_locks():
        if os.environ.get("KERAS_BACKEND") == "torch":
            load_torch_before_tensorflow()
        import keras  # noqa: F401
        import keras_hub  # noqa: F401


@contextlib.contextmanager
def hdf5_without_file_locks():
    """Start HDF5 (h5py, which Keras imports) inside this block without its own
    file locks, leaving the environment as it was.

    Checkpoints are written to temporary names and committed by renames, and a
    run directory has its own lock (`keras_har.training.run_lock`), so HDF5's
    locks protect nothing here; they do fail a read of a file whose inode an
    interrupted save in the same process left open ("unable to lock file,
    errno = 11"). HDF5 reads HDF5_USE_FILE_LOCKING once, when the library
    starts: the variable is set for that moment only. Nothing changes when
    h5py is already loaded or the user set the variable."""
    import os
    import sys

    name = "HDF5_USE_FILE_LOCKING"
    if "h5py" in sys.modules or name in os.environ:
        yield
        return
    os.environ[name] = "FALSE"
    try:
        import h5py  # noqa: F401
        yield
    finally:
        os.environ.pop(name, None)

"""Loader worker processes that start without the user's main script.

multiprocessing's "spawn" start (grain's workers) runs the parent's main
script again in every new process, as `__mp_main__`, before unpickling what
the process is given. A script that imports Keras at the top (as most do)
would make every loader worker import Keras, keras-hub, TensorFlow and the
backend: seconds and hundreds of MB per worker, and on a GPU machine a CUDA
context per worker. A loader's workers need none of it: grain hands them the
pipeline serialised by value (cloudpickle), including anything the main
script defined. So while a keras-har loader starts its workers
(`without_main_script()`), the spawned processes are told not to run the
main script; every other process the program spawns is left as it was.
"""

import contextlib
import threading
from multiprocessing import spawn

_lock = threading.Lock()
_active = 0  # loaders starting workers right now (grain may start them from its own threads)
_original = spawn.get_preparation_data


def _preparation_data(name):
    data = _original(name)
    if _active:
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


@contextlib.contextmanager
def without_main_script():
    """Processes spawned inside this block do not run the main script."""
    global _active
    with _lock:
        spawn.get_preparation_data = _preparation_data
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1

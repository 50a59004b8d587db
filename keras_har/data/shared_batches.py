"""Releasing the shared memory of the batches grain's worker processes send.

A grain worker (`mp_prefetch`) writes each batch into a POSIX shared-memory
segment and registers it with multiprocessing's resource tracker; the main
process maps it (a `SharedMemoryArray`) and unlinks it -- unregistering it --
only when that array is deleted, and then on a background thread. Batches
that are still alive when the interpreter exits (reference cycles the
collector has not run on, or deletions still queued on that thread) are never
unlinked by the process: the tracker unlinks them after it and prints
"resource_tracker: There appear to be N leaked shared_memory objects".

`release_worker_batches()` frees them while the process runs: a garbage
collection (the arrays in unreachable cycles are deleted and their unlinks
queued), then a wait for grain's deletion thread to finish what is queued.
A loader calls it when it closes, and once more at exit (`release_at_exit`).
"""

import atexit
import gc

RELEASE_TIMEOUT_S = 10.0
_at_exit = []


def _deletion_pool():
    """grain's thread pool that closes and unlinks deleted arrays (None before
    the first worker batch, or when grain deletes them inline)."""
    try:
        from grain._src.python.ipc.shared_memory_array import SharedMemoryArray
    except ImportError:
        return None
    return getattr(SharedMemoryArray, "_del_thread_pool", None)


def release_worker_batches():
    """Unlink the shared memory of every worker batch no longer referenced."""
    gc.collect()
    pool = _deletion_pool()
    if pool is None:
        return
    try:  # the pool has one thread: a no-op queued now runs after every queued deletion
        pool.apply_async(int).wait(RELEASE_TIMEOUT_S)
    except ValueError:  # the pool is already closed (interpreter shutdown)
        pass


def release_at_exit():
    """Call `release_worker_batches` at interpreter exit (registered once)."""
    if not _at_exit:
        _at_exit.append(atexit.register(release_worker_batches))

"""A lock on a run directory: one process at a time trains into it.

`RunLock(run_dir)` takes an exclusive `fcntl.flock` on `run_dir/.lock` and
writes the holder's pid and host into it. The kernel drops the lock when its
process dies however it dies (SIGKILL included), so a lock left by a killed
run is taken over by the next run at once; a live holder makes the second run
fail immediately with a message naming its pid.
"""

import fcntl
import json
import os
import pathlib
import socket
import time

LOCK_FILE = ".lock"


class RunDirectoryLocked(RuntimeError):
    """Another live process holds the run directory."""

    user_error = True  # keras_har.errors: one line, exit status 2


class RunLock:
    def __init__(self, run_dir):
        self.path = pathlib.Path(run_dir) / LOCK_FILE
        self._fd = None

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder()
            os.close(fd)
            who = f"process {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
            raise RunDirectoryLocked(
                f"{self.path.parent} is in use by {who} (lock {self.path}); wait for it to finish, "
                "or choose another --output-dir."
            ) from None
        stale = self.holder()
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
        os.fsync(fd)
        self._fd = fd
        return stale  # the dead holder's record, if a killed run left one

    def holder(self):
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

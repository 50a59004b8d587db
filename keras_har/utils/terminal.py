"""The terminal: file names that are not valid UTF-8, native libraries' start-up lines."""

import contextlib
import logging
import os
import sys


def allow_any_file_name_on_output():
    """Let stdout / stderr print file names whose bytes are not UTF-8 (Python
    holds them as surrogate escapes): they are written back as the original
    bytes, as `ls` shows them, instead of raising UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="surrogateescape")


class _Stderr:
    """A stream that writes to whatever `sys.stderr` is at the time."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()


def setup_logging(training):
    """The one logging set-up of every `keras-har` command and recipe: any
    file name printable (`allow_any_file_name_on_output`); other libraries'
    messages at WARNING. A training run (`training=True`) logs keras-har's
    own messages at INFO, timed, on stdout beside Keras' progress; the other
    commands print their results on stdout and log warnings on stderr."""
    allow_any_file_name_on_output()
    if training:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s",
                            datefmt="%H:%M:%S", stream=sys.stdout)
        logging.getLogger("keras_har").setLevel(logging.INFO)
    else:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=_Stderr())
@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what C++ libraries print straight to file descriptor 2 while they
    load (TensorFlow 2.21, pulled in by keras-hub, logs several lines there on
    import whatever TF_CPP_MIN_LOG_LEVEL says). Python's `sys.stderr` keeps
    writing to the real stderr meanwhile. KERAS_HAR_DEBUG=1 leaves fd 2 alone."""
    if os.environ.get("KERAS_HAR_DEBUG", "") not in ("", "0"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield
        return
    try:
        on_fd2 = sys.stderr.fileno() == 2
    except (OSError, AttributeError, ValueError):
        on_fd2 = False  # e.g. captured by a test harness: leave it alone
    real = os.fdopen(os.dup(saved), "w", buffering=1, errors="replace") if on_fd2 else None
    devnull = os.open(os.devnull, os.O_WRONLY)
    old_stderr = sys.stderr
    os.dup2(devnull, 2)
    if real is not None:
        sys.stderr = real
    try:
        yield
    finally:
        sys.stderr = old_stderr
        if real is not None:
            real.flush()
            real.close()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)

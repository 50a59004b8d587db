"""Printing file names that are not valid UTF-8."""

import contextlib
import logging
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

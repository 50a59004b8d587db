"""Printing file names that are not valid UTF-8."""

import contextlib
import sys


def allow_any_file_name_on_output():
    """Let stdout / stderr print file names whose bytes are not UTF-8 (Python
    holds them as surrogate escapes): they are written back as the original
    bytes, as `ls` shows them, instead of raising UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="surrogateescape")

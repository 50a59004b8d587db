"""The one way a `keras-har` command or recipe ends on an error.

A user error -- bad flags, a missing file, an unreadable video or checkpoint,
a run directory in use, a full disk -- is one line on stderr and exit status 2
(`KERAS_HAR_DEBUG=1` shows the traceback instead). Anything else is a bug and
keeps its traceback. Imports nothing of keras-har.
"""

import contextlib
import os
import sys

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A user error with its one-line message."""


def debug():
    """Whether KERAS_HAR_DEBUG asks for tracebacks."""
    return os.environ.get("KERAS_HAR_DEBUG", "") not in ("", "0")


def one_line(error):
    """The first non-empty line of an error's message (its type if none)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def is_user_error(error):
    """A user error: `CLIError`, `ValueError`, `OSError`, or an exception
    class marked `user_error = True` (unreadable videos, locked run
    directories)."""
    return isinstance(error, (CLIError, ValueError, OSError)) or getattr(error, "user_error", False)


def report(error, prefix="", describe=one_line):
    """The exit status for `error` raised by a command: a user error is
    printed as `"{prefix}: error: {describe(error)}"` on stderr (status 2),
    Ctrl-C is status 130, a closed pipe on stdout (`... | head`) status 1,
    quietly. Anything else (a bug) is raised again, with its traceback."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, BrokenPipeError):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    if debug() or not is_user_error(error):
        raise error
    print(f"{prefix}: error: {describe(error)}" if prefix else f"error: {describe(error)}", file=sys.stderr)
    return EXIT_USAGE

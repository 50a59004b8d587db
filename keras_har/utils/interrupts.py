"""Ctrl-C and SIGTERM as a stop request: a run stops at a step boundary.

`handle_signals()` (a context manager; `experiment.run_main` holds it around a
recipe) turns the first SIGINT or SIGTERM into a request:

- inside a `deferred()` block (a training phase, an evaluation loop) the
  request is only recorded; the code there calls `check()` at its step
  boundaries (after committing what it has), which raises `RunInterrupted`;
- elsewhere (set-up, between phases) `RunInterrupted` is raised at once.

A second signal ends the process at once (`os._exit`, status 128 + signal;
the last commit stands, the kernel releases the run lock, the loader workers'
watchdogs end them).

SIGINT and SIGTERM are blocked in the thread that enters `handle_signals()`
and so in every thread and process started from it afterwards: the loader's
worker processes never see them (a terminal sends Ctrl-C to the whole
process group; Slurm sends SIGTERM to every process of a step) and are
stopped by their parent. A helper thread receives the signals
(`signal.sigtimedwait`) and hands them to the main thread
(`_thread.interrupt_main`), where the handler runs between two Python
bytecodes.
"""

import _thread
import contextlib
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"requested": None, "deferred": 0, "received": 0}
_lock = threading.Lock()


class RunInterrupted(BaseException):
    """A SIGINT or SIGTERM stopped the run (a BaseException, like
    KeyboardInterrupt, so that no `except Exception` swallows it)."""

    def __init__(self, signum):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self):
        return 128 + self.signum


def requested():
    """The signal number of a pending stop request, or None."""
    return _state["requested"]


def check():
    """Raise `RunInterrupted` if a stop was requested."""
    if _state["requested"] is not None:
        raise RunInterrupted(_state["requested"])


@contextlib.contextmanager
def deferred():
    """A block whose code stops only where it calls `check()`."""
    with _lock:
        _state["deferred"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["deferred"] -= 1


def _on_signal(signum, frame):  # the main thread
    with _lock:
        _state["received"] += 1
        second = _state["received"] > 1
        _state["requested"] = signum if _state["requested"] is None else _state["requested"]
        now = _state["deferred"] == 0
    if second:
        exit_now(signum)
    if now:
        raise RunInterrupted(signum)


def exit_now(signum):
    """End the process at once, with one line on stderr."""
    print(f"\n{signal.Signals(signum).name} again: stopping now; the last commit of the run is "
          "kept (--resume continues from it)", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def _receiver(stop):
    seen = 0
    while not stop.is_set():
        info = signal.sigtimedwait(SIGNALS, 0.2)
        if info is None:
            continue
        seen += 1
        if seen > 1 or _state["received"] > 0:
            exit_now(info.si_signo)  # no need to wait for the main thread
        _thread.interrupt_main(info.si_signo)


@contextlib.contextmanager
def handle_signals():
    """Install the handlers (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    stop = threading.Event()
    receiver = threading.Thread(target=_receiver, args=(stop,), name="keras_har-signals", daemon=True)
    receiver.start()
    _state.update(requested=None, received=0)
    try:
        yield
    finally:
        stop.set()
        receiver.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.update(requested=None, received=0)


def ignore_in_worker():
    """In a loader worker process: SIGINT and SIGTERM are the parent's to handle."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)

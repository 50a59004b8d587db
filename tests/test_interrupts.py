"""Ctrl-C, SIGTERM and commits inside an epoch, with real signals to real
recipe processes: the run stops at a step boundary with one line and exit
status 128 + signal, the loader workers stop quietly, and --resume ends with
the uninterrupted run's files, byte for byte. Damaged commits fall back to the
one before."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from test_recipes import RECIPES, load_recipe
from test_recipes import videomae_flags as recipe_flags

from keras_har.training import checkpoints, experiment

COMPARED = ("metrics.json", "history_phase1.csv", "history_phase2.csv")
NOISE = ("Traceback", "Exception ignored", "KeyboardInterrupt")

# The recipe in a process of its own (its own process group, as a terminal
# starts it) that sends itself a real signal from inside training: at the end
# of step STEP of epoch EPOCH of phase PHASE (1-based), `SIGNAL` to `TARGET`
# ("group": every process of the run, workers included, as Ctrl-C does;
# "self": the main process only), `TIMES` times 0.5 s apart; the moment of
# the first is written to `OUT/.signalled`.
SIGNALLER = """
import os, pathlib, signal, sys, time
from keras_har.training import callbacks
out, phase, epoch, step, name, target, times = sys.argv[1], *map(int, sys.argv[2:5]), *sys.argv[5:8]
original, original_begin = callbacks.RunCheckpoint.on_train_batch_end, callbacks.RunCheckpoint.on_epoch_begin
def on_epoch_begin(self, epoch, logs=None):
    self.signaller_epoch = epoch
    return original_begin(self, epoch, logs)
def on_train_batch_end(self, batch, logs=None):
    if (self.phase, self.signaller_epoch + 1, getattr(self, "offset", 0) + batch + 1) == (phase, epoch, step):
        pathlib.Path(out, ".signalled").write_text(repr(time.time()))
        for k in range(int(times)):
            if k:
                time.sleep(0.5)
            if name == "KILL":
                os.kill(os.getpid(), signal.SIGKILL)
            send = (lambda s: os.killpg(os.getpgrp(), s)) if target == "group" else (lambda s: os.kill(os.getpid(), s))
            send(getattr(signal, "SIG" + name))
    return original(self, batch, logs)
callbacks.RunCheckpoint.on_train_batch_end = on_train_batch_end
callbacks.RunCheckpoint.on_epoch_begin = on_epoch_begin
import runpy
sys.argv = [sys.argv[8], *sys.argv[9:]]  # the recipe script, run as `python recipes/<name>.py FLAGS`
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def flags(tiny_synthetic, out, *extra):
    f = recipe_flags(tiny_synthetic, out, (1, 1)) + list(extra)
    f[f.index("--tta-views") + 1] = "1"
    return f


@pytest.fixture(scope="module")
def reference(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("interrupts") / "reference"
    experiment.run_main(load_recipe("videomae_two_phase").main, flags(tiny_synthetic, out))
    return out


def signalled_run(tiny_synthetic, out, at, name, target="group", times=1, extra=()):
    """Run the recipe with a grain worker until it signals itself at `at`
    (phase, epoch, step); returns (exit status, stderr, seconds from the
    signal to the exit, the run's process group)."""
    f = flags(tiny_synthetic, out, *extra)
    f[f.index("--workers") + 1] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNALLER, str(out), *map(str, at), name, target, str(times),
         str(RECIPES / "videomae_two_phase.py"), *f],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    stdout, stderr = proc.communicate(timeout=600)
    ended = time.time()
    sent = float((out / ".signalled").read_text()) if (out / ".signalled").exists() else None
    return proc.returncode, stdout + stderr, None if sent is None else ended - sent, proc.pid


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def resume_in_process(out):
    try:
        experiment.run_main(load_recipe("videomae_two_phase").main, ["--resume", str(out), "--verbose", "0"])
    except SystemExit as e:
        assert e.code == 0, e.code


def assert_same_files(out, reference):
    for name in COMPARED:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_ctrl_c_stops_at_a_step_and_resumes_byte_identically(tiny_synthetic, reference, tmp_path):
    """SIGINT to the whole process group in the middle of phase 1's epoch:
    one line naming the step and the --resume command, exit status 130, no
    traceback from the workers or grain's iterators, no process left; the
    resumed run's histories and metrics are the uninterrupted run's."""
    out = tmp_path / "run"
    code, output, _, pgid = signalled_run(tiny_synthetic, out, (1, 1, 2), "INT")
    assert code == 130, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("SIGINT")]
    assert len(lines) == 1 and "stopped at phase 1, epoch 1, step" in lines[0], output[-3000:]
    assert f"--resume {out}" in lines[0]
    assert not [n for n in NOISE if n in output], output[-3000:]
    deadline = time.time() + 5
    while group_alive(pgid) and time.time() < deadline:
        time.sleep(0.1)
    assert not group_alive(pgid), "a process of the run outlived it by 5 s"
    state = checkpoints.read_state(out)
    assert state["phase"] == 1 and state["phase1_epochs_done"] == 0 and state["phase1_step"] >= 2, state
    history = out / "history_phase1.csv"  # no row for the unfinished epoch
    assert not history.exists() or len(history.read_text().splitlines()) <= 1
    resume_in_process(out)
    assert_same_files(out, reference)


def test_sigterm_exits_143_within_seconds_and_a_second_signal_at_once(tiny_synthetic, tmp_path):
    """SIGTERM to the main process only (what Kubernetes sends): a commit at
    the next step and exit status 143 within seconds. Two Ctrl-C's 0.5 s
    apart: the second ends the process at once (130, before the step's
    commit), the run directory holds the complete commit of the step before."""
    out = tmp_path / "term"
    code, output, seconds, _ = signalled_run(tiny_synthetic, out, (2, 1, 2), "TERM", target="self")
    assert code == 143, output[-3000:]
    assert seconds < 10, seconds
    lines = [line for line in output.splitlines() if line.startswith("SIGTERM")]
    assert len(lines) == 1 and "stopped at phase 2, epoch 1, step" in lines[0], output[-3000:]
    assert checkpoints.read_state(out)["phase2_step"] >= 2
    assert not [n for n in NOISE if n in output], output[-3000:]

    out = tmp_path / "twice"
    code, output, seconds, _ = signalled_run(tiny_synthetic, out, (1, 1, 2), "INT", times=2,
                                             extra=["--checkpoint-every-steps", "1"])
    assert code == 130 and "SIGINT again: stopping now" in output, output[-3000:]
    assert seconds < 10, seconds
    assert checkpoints.damage(checkpoints.committed_dir(out)) is None
    assert checkpoints.read_state(out)["phase1_step"] >= 1


def test_commits_every_n_steps_resume_byte_identically(tiny_synthetic, reference, tmp_path):
    """--checkpoint-every-steps 1 and a SIGKILL in phase 2's epoch after a
    step commit: --resume continues from that step (model, optimizer,
    schedule, metric accumulators, loader position) to the uninterrupted
    run's files; the run keeps two commits."""
    out = tmp_path / "run"
    code, output, _, _ = signalled_run(tiny_synthetic, out, (2, 1, 3), "KILL",
                                       extra=["--checkpoint-every-steps", "1"])
    assert code == -signal.SIGKILL, output[-3000:]
    state = checkpoints.read_state(out)
    assert state["phase"] == 2 and state["phase2_step"] == 2, state
    assert len(checkpoints.kept_commits(out)) == 2
    resume_in_process(out)
    assert_same_files(out, reference)
    assert [p.name.rsplit("-", 1)[0] for p in checkpoints.kept_commits(out)] == [
        "phase2-epoch0001", "phase2-epoch0001-step000003"]


def test_a_damaged_commit_falls_back_to_the_one_before(tiny_synthetic, reference, tmp_path, caplog):
    """A truncated last.weights.h5 in the last commit of a finished run, and
    a second phase-2 epoch asked for: --resume names the damaged file, goes
    back to the commit before it (phase 1's epoch) and runs phase 2 again."""
    out = tmp_path / "run"
    experiment.run_main(load_recipe("videomae_two_phase").main, flags(tiny_synthetic, out))
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "epochs_phase2": 2}))
    weights = checkpoints.committed_dir(out) / "last.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with caplog.at_level("WARNING", logger="keras_har"):
        resume_in_process(out)
    lines = [r.getMessage() for r in caplog.records if "going back" in r.getMessage()]
    assert len(lines) == 1 and str(weights) in lines[0] and "phase 1, after epoch 1" in lines[0], lines
    assert len((out / "history_phase2.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert (out / "history_phase1.csv").read_bytes() == (reference / "history_phase1.csv").read_bytes()


def test_commit_chain_and_damage_detection(tmp_path, caplog):
    """Unit level, every backend: each commit names the one before; the last
    K stay on disk; a flipped byte or a truncated file is found by its
    SHA-256 and `recover` goes back to the newest intact commit, naming the
    file; with nothing intact left, one error naming it."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adamw", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    for epoch in (1, 2, 3):
        checkpoints.commit_epoch(tmp_path, f"phase1-epoch{epoch:04d}", {"last.weights.h5": model.save_weights},
                                 {"phase": 1, "phase1_epochs_done": epoch}, keep=2)
    chain = checkpoints.kept_commits(tmp_path)
    assert [p.name[:-9] for p in chain] == ["phase1-epoch0003", "phase1-epoch0002"]
    assert sorted(p.name for p in (tmp_path / ".checkpoints").iterdir()) == sorted(p.name for p in chain)
    assert checkpoints.recover(tmp_path)["phase1_epochs_done"] == 3
    weights = chain[0] / "last.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit: h5py still opens it
    weights.write_bytes(bytes(data))
    assert checkpoints.damage(chain[0])[0] == weights
    with caplog.at_level("WARNING", logger="keras_har"):
        assert checkpoints.recover(tmp_path) == {"phase": 1, "phase1_epochs_done": 2}
    assert any(str(weights) in r.getMessage() and "after epoch 2" in r.getMessage() for r in caplog.records)
    assert checkpoints.committed_dir(tmp_path) == chain[1]
    (chain[1] / "state.json").write_text("{broken")
    with pytest.raises(ValueError, match="state.json: .*no earlier intact commit"):
        checkpoints.recover(tmp_path)


def test_interrupt_outside_training_and_worker_signals(tmp_path):
    """`handle_signals` unit level: outside a deferred block a signal raises
    RunInterrupted at once; inside one it waits for `check()`; the handlers
    and the signal mask are restored afterwards."""
    from keras_har.utils import interrupts

    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with pytest.raises(interrupts.RunInterrupted) as info:
        with interrupts.handle_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):
                time.sleep(0.05)
    assert info.value.exit_code == 143
    with interrupts.handle_signals():
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.time() + 5
            while interrupts.requested() is None and time.time() < deadline:
                time.sleep(0.05)
            assert interrupts.requested() == signal.SIGINT
            with pytest.raises(interrupts.RunInterrupted):
                interrupts.check()
    assert interrupts.requested() is None
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

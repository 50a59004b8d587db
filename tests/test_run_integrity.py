"""Run integrity: one commit point per epoch, a lock on the run directory,
loaders that close their workers, one-line errors for full disks and corrupt
run files, real-video metrics, and runs killed at random that resume to the
uninterrupted result."""

import errno
import importlib.util
import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from test_recipes import RECIPES, history, load_recipe
from test_recipes import videomae_flags as recipe_flags

from keras_har import data
from keras_har.converters.checkpoint import load_state_dict
from keras_har.utils.preset_utils import CheckpointError
from keras_har.training import checkpoints, experiment
from keras_har.training.run_lock import RunDirectoryLocked, RunLock

JAX_ONLY = pytest.mark.skipif(keras.backend.backend() != "jax",
                              reason="process-level behaviour: checked once, under jax")
SCRIPTS = RECIPES.parent / "scripts"
HALF = (0.5,) * 3  # a loader's normalisation (mean and std) in these tests


def videomae_flags(tiny_synthetic, out, epochs=(1, 1)):
    """The recipe tests' tiny run, with the single test view (the kills and
    faults here are about training and its files)."""
    flags = recipe_flags(tiny_synthetic, out, epochs)
    flags[flags.index("--tta-views") + 1] = "1"
    return flags


def errors(capsys):
    """The error lines a run printed on stderr (progress bars aside)."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def run(flags):
    """A recipe run in this process; (exit status, metrics or None)."""
    try:
        return 0, experiment.run_main(load_recipe("videomae_two_phase").main, flags)
    except SystemExit as e:
        return e.code, None


def same_result(out, reference):
    for name in ("metrics.json", "history_phase1.csv", "history_phase2.csv"):
        a, b = reference / name, out / name
        if name.endswith(".json"):
            assert json.loads(b.read_text())["single_view"] == json.loads(a.read_text())["single_view"], name
        else:
            for ra, rb in zip(history(a), history(b), strict=True):
                assert ra["epoch"] == rb["epoch"]
                np.testing.assert_allclose(float(rb["loss"]), float(ra["loss"]), rtol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def reference(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("integrity") / "reference"
    assert run(videomae_flags(tiny_synthetic, out, epochs=(1, 1)))[0] == 0
    return out


def test_commit_steps_are_one_atomic_switch(tmp_path):
    """Unit level, every backend: a fault at any step of a commit leaves the
    previous epoch committed, whole; the next commit cleans up after it."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adamw", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    files = lambda: {"last.weights.h5": model.save_weights}  # noqa: E731
    checkpoints.commit_epoch(tmp_path, "phase1-epoch0001", {**files(), "best_phase1.weights.h5":
                             model.save_weights}, {"phase1_epochs_done": 1})
    steps = []
    checkpoints.fault_hook = lambda name, label: steps.append(label)
    try:
        checkpoints.commit_epoch(tmp_path, "phase1-epoch0002", files(), {"phase1_epochs_done": 2},
                                 carry=["best_phase1.weights.h5"])
    finally:
        checkpoints.fault_hook = None
    assert steps == ["write last.weights.h5", "link best_phase1.weights.h5", "write state.json",
                     "write commit.json", "rename the epoch directory", "commit"]
    for k, label in enumerate(steps):
        def fault(name, step, label=label):
            if step == label:
                raise OSError(errno.ENOSPC, "No space left on device (injected)", "x")
        checkpoints.fault_hook = fault
        try:
            with pytest.raises(OSError, match="injected"):
                checkpoints.commit_epoch(tmp_path, f"phase1-epoch{3 + k:04d}", files(),
                                         {"phase1_epochs_done": 3 + k}, carry=["best_phase1.weights.h5"])
        finally:
            checkpoints.fault_hook = None
        assert checkpoints.read_state(tmp_path) == {"phase1_epochs_done": 2}
        assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {
            "last.weights.h5", "best_phase1.weights.h5", "state.json", "commit.json"}
    assert json.loads((tmp_path / "state.json").read_text()) == {"phase1_epochs_done": 2}
    removed = checkpoints.clean_stale(tmp_path)
    assert removed and not checkpoints.clean_stale(tmp_path)
    # The committed epoch and the one before it (checkpoints.KEEP) stay.
    assert sorted(p.name[:-9] for p in (tmp_path / ".checkpoints").iterdir()) == [
        "phase1-epoch0001", "phase1-epoch0002"]


@JAX_ONLY
def test_fault_at_every_checkpoint_step_then_resume(tiny_synthetic, reference, tmp_path):
    """The recipe with a fault injected at each file operation of the phase-2
    commit, each followed by --resume: the same result as no fault."""
    labels = ["write last.weights.h5", "write best_phase2.weights.h5", "link best_phase1.weights.h5",
              "write state.json", "rename the epoch directory", "commit"]
    for label in labels:
        out = tmp_path / label.replace(" ", "_")

        def fault(name, step, label=label):
            if name.startswith("phase2") and step == label:
                raise OSError(errno.ENOSPC, "No space left on device (injected)", str(out / label))

        checkpoints.fault_hook = fault
        try:
            code, _ = run(videomae_flags(tiny_synthetic, out, epochs=(1, 1)))
        finally:
            checkpoints.fault_hook = None
        assert code == 2, label
        state = checkpoints.read_state(out)
        assert state.get("phase1_epochs_done") == 1 and "phase2_epochs_done" not in state, label
        assert run(["--resume", str(out)])[0] == 0, label
        same_result(out, reference)
        assert not checkpoints.clean_stale(out), label


DISK_FULL = """
import errno, pathlib, sys
from keras_har.training import checkpoints
out = pathlib.Path(sys.argv[1])
def full(name, step):
    if name.startswith("phase2") and step == "write last.weights.h5":
        raise OSError(errno.ENOSPC, "No space left on device", str(out / ".checkpoints" / "x.h5"))
checkpoints.fault_hook = full
import runpy
sys.argv = sys.argv[2:]  # the recipe script, run as `python recipes/<name>.py FLAGS`
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@JAX_ONLY
def test_disk_full_is_one_line_and_resumable(tiny_synthetic, reference, tmp_path):
    """A full disk while saving, in a real process with loader workers: one
    line naming the file and the way on, exit status 2 (no crash on the way
    out), the last epoch intact, and --resume ends like an uninterrupted run."""
    out = tmp_path / "run"
    flags = videomae_flags(tiny_synthetic, out, epochs=(1, 1))
    flags[flags.index("--workers") + 1] = "1"
    result = subprocess.run([sys.executable, "-c", DISK_FULL, str(out), str(RECIPES / "videomae_two_phase.py")]
                            + flags, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "KERAS_BACKEND": "jax"})
    err = [line for line in result.stderr.splitlines() if line.startswith("keras-har train: error:")]
    assert result.returncode == 2 and len(err) == 1, result.stderr[-3000:]
    assert "x.h5: No space left on device" in err[0] and f"--resume {out}" in err[0]
    assert checkpoints.read_state(out)["phase1_epochs_done"] == 1
    assert run(["--resume", str(out)])[0] == 0
    same_result(out, reference)


def test_corrupt_run_files_are_named(tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(videomae_flags(tiny_synthetic, out, epochs=(1, 1)))[0] == 0
    capsys.readouterr()
    # Ask for a second phase-2 epoch (a resume then reads the last weights),
    # and damage the files it reads.
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "epochs_phase2": 2}))
    committed = (out / "checkpoints").resolve()
    weights = committed / "last.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    # Keeping one commit only: nothing to go back to (test_interrupts.py: the
    # default falls back to the commit before).
    code, _ = run(["--resume", str(out), "--verbose", "0", "--keep-checkpoints", "1"])
    err = errors(capsys)
    assert code == 2 and len(err) == 1 and "last.weights.h5: its contents changed" in err[0], err
    assert "no earlier intact commit" in err[0]
    (committed / "state.json").write_text("{broken")
    (committed / "commit.json").unlink()  # a commit without a manifest: its files are read
    code, _ = run(["--resume", str(out)])
    err = errors(capsys)
    assert code == 2 and len(err) == 1 and "state.json: corrupt JSON" in err[0], err


def test_a_run_directory_in_use_is_refused(tiny_synthetic, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from keras_har.training.run_lock import RunLock; "
        f"RunLock({str(tmp_path / 'run')!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirectoryLocked, match=f"in use by process {holder.pid} on"):
            RunLock(tmp_path / "run").acquire()
        code, _ = run(videomae_flags(tiny_synthetic, tmp_path / "run"))
        err = errors(capsys)
        assert code == 2 and len(err) == 1 and f"in use by process {holder.pid}" in err[0]
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(tmp_path / "run")  # the killed holder's lock is taken over at once
    assert lock.acquire()["pid"] == holder.pid
    lock.release()


def test_stale_temporaries_are_removed_when_a_run_starts(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    (out / ".checkpoints" / ".tmp-phase1-epoch0001-dead").mkdir(parents=True)
    (out / ".checkpoints" / "phase1-epoch0003").mkdir()  # never committed
    (out / ".tmp-abcd-metrics.json").write_text("{")
    assert run(videomae_flags(tiny_synthetic, out, epochs=(1, 0)))[0] == 0
    assert [p.name[:-9] for p in (out / ".checkpoints").iterdir()] == ["phase1-epoch0001"]
    assert not list(out.glob(".tmp-*"))


def test_many_loaders_open_and_close(tiny_synthetic):
    """50 evaluation passes with a worker process each, closed explicitly: no
    file descriptor or process is left behind."""
    videos, splits = tiny_synthetic
    test = data.HMDB51(videos, splits, subset="test")
    import gc
    import multiprocessing

    older = set(multiprocessing.active_children())  # not this test's to judge

    def own_workers():
        return [p for p in multiprocessing.active_children() if p not in older and p.is_alive()]

    def settled_fds():
        # grain's close() asks the worker to stop, joins it for up to 25 s, then
        # kills it; the pipes and shared-memory buffers of the worker last closed
        # go with it (and with the garbage collector), so count once it is gone.
        deadline = time.monotonic() + 30
        while own_workers() and time.monotonic() < deadline:
            time.sleep(0.5)
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    fds = None
    for i in range(51):
        if i == 1:  # after the first: grain's and multiprocessing's one-time pipes and pools exist
            fds = settled_fds()
        with data.make_loader(test, training=False, batch_size=6, num_frames=4, sampling_rate=2,
                              image_size=32, workers=1, mean=HALF, std=HALF) as loader:
            batches = list(loader)
        assert sum(len(b[0]) for b in batches) == len(test)
    # A worker left behind, or its pipes (6 per worker) or shared memory leaked
    # per loader, would add 50 or more; allow the few that other threads of the
    # process (the backend's, tqdm's) open meanwhile.
    assert settled_fds() <= fds + 10
    assert not own_workers()


def test_validation_counts_only_readable_videos(tmp_path):
    """A replacement for an unreadable video weighs 0 in validation."""
    from conftest import moving_square_frames, write_video

    items = []
    for i in range(4):
        path = tmp_path / f"v{i}.avi"
        write_video(path, moving_square_frames(num_frames=8, height=32, width=32, seed=i))
        items.append((str(path), i % 2))
    (tmp_path / "v4.avi").write_bytes(b"not a video")
    items.append((str(tmp_path / "v4.avi"), 0))
    dataset = data.VideoDataset(items, ["a", "b"])
    loader = data.make_loader(dataset, training=False, batch_size=5, num_frames=4, sampling_rate=2,
                              image_size=32, workers=0, with_weights=True, bad_video_log=tmp_path / "bad.txt",
                              mean=HALF, std=HALF)
    ((x, y, w),) = list(loader)
    assert w.tolist() == [1, 1, 1, 1, 0]
    assert [p for p, _ in loader.bad_videos()] == [str(tmp_path / "v4.avi")]
    other = data.make_loader(data.VideoDataset(items[:2], ["a", "b"]), training=False, batch_size=2,
                             num_frames=4, sampling_rate=2, image_size=32, workers=0,
                             bad_video_log=tmp_path / "bad.txt", mean=HALF, std=HALF)
    assert other.bad_videos() == []  # the shared log, but not this loader's videos


def test_folder_dataset_without_split_folders(tmp_path):
    from conftest import moving_square_frames, write_video

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        write_video(tmp_path / cls / "1.avi", moving_square_frames(num_frames=6))
    train = data.dataset_index({"dataset": "folder", "data_root": str(tmp_path)}, "train")
    test = data.dataset_index({"dataset": "folder", "data_root": str(tmp_path)}, "test",
                              class_names=train.class_names)
    assert train.class_names == ["a", "b"] and len(train) == len(test) == 2


def test_checkpoint_shards_only_from_inside(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "../elsewhere/model.safetensors"}}))
    with pytest.raises(CheckpointError, match="outside the checkpoint directory"):
        load_state_dict(tmp_path / "ckpt")


@JAX_ONLY
def test_random_sigkills_resume_byte_identically(tmp_path):
    """scripts/chaos_resume.py, small: 10 SIGKILLs of the real script with a
    grain worker, each a seeded random fraction of 35% of the uninterrupted
    run's training time after an attempt starts training (so in epochs,
    commits, the phase switch), each resumed; no process outlives a kill by
    5 s; every run that reaches its end equals the uninterrupted run's files
    byte for byte. (Kills during set-up: the script's default, longer.)"""
    spec = importlib.util.spec_from_file_location("chaos_resume", SCRIPTS / "chaos_resume.py")
    chaos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chaos)
    videos, splits = data.make_synthetic_dataset(tmp_path / "data", train_per_class=4, test_per_class=2,
                                                 num_frames=12, image_size=32, seed=0)
    flags = ["--dataset", "hmdb51", "--data-root", str(videos), "--split-dir", str(splits),
             "--num-frames", "4", "--image-size", "32", "--batch-size", "4", "--grad-accum", "1",
             "--workers", "1", "--verbose", "2", "--preset", "tiny", "--epochs-phase1", "2",
             "--epochs-phase2", "2", "--tta-views", "1"]  # 2 epochs a phase: Keras prints "Epoch k/2"
    lines = []
    problems = chaos.chaos(RECIPES / "videomae_two_phase.py", flags, tmp_path / "chaos", kills=10, seed=0,
                           grace=5.0, timeout=600, log=lines.append, marker="Epoch ",
                           span=0.35)  # kills within the first 35% of the training time after each start
    assert not problems, problems
    kills = [line for line in lines if line.startswith("kill ")]
    assert len(kills) == 10, lines
    # The kills reach past the first commit: the run makes progress between them.
    assert sum("no committed epoch" not in line for line in kills) >= 2, lines


def test_file_names_that_are_not_utf8(tmp_path, capfd):
    """A video whose name is not valid UTF-8 (an archive unpacked from another
    system): indexed, decoded by the loader's workers, logged, and labelled by
    `keras-har predict`, with no crash."""
    from conftest import moving_square_frames, write_video

    from keras_har import cli
    from keras_har.models import VideoMAEBackbone, VideoMAEClassifier

    root = tmp_path / "clips"
    odd = None
    for i, cls in enumerate(("a", "b")):
        (root / cls).mkdir(parents=True)
        write_video(root / cls / "plain.avi", moving_square_frames(num_frames=8, height=32, width=32, seed=i))
        tmp = root / cls / "tmp.avi"
        write_video(tmp, moving_square_frames(num_frames=8, height=32, width=32, seed=5 + i))
        odd_bytes = os.fsencode(root / cls) + b"/caf\xe9_\xff.avi"  # Latin-1 bytes: not UTF-8
        os.rename(tmp, odd_bytes)
        odd = os.fsdecode(odd_bytes)
    dataset = data.VideoFolder(root)
    assert odd in dataset.paths and len(dataset) == 4
    with data.make_loader(dataset, training=True, batch_size=4, num_frames=4, sampling_rate=2, image_size=32,
                          workers=1, bad_video_log=tmp_path / "bad.txt", on_error="raise", mean=HALF,
                          std=HALF) as loader:
        ((x, y),) = list(loader)
    assert np.isfinite(x).all() and x.shape == (4, 4, 32, 32, 3)
    log = data.pipeline.BadVideoLog(tmp_path / "bad.txt")
    log.add(odd, "a reason")  # the bad-video list holds such names too
    assert log.entries() == [[odd, "a reason"]]

    backbone = VideoMAEBackbone(image_size=32, num_frames=4, patch_size=8, tubelet_size=2, hidden_dim=32,
                                num_layers=1, num_heads=4, mlp_dim=64)
    VideoMAEClassifier(backbone, labels=["a", "b"]).save_to_preset(tmp_path / "preset")
    capfd.readouterr()
    code = cli.main(["predict", odd, "--preset", str(tmp_path / "preset"), "--json", "--num-frames", "4"])
    out = capfd.readouterr().out
    assert code == 0
    (result,) = json.loads(out)
    assert result["video"] == odd and len(result["top"]) == 2


def test_worker_watchdog_ends_an_orphan():
    """A loader worker whose parent is not the one that started it (it died,
    maybe before the worker even started) exits at once."""
    result = subprocess.run([sys.executable, "-c", (
        "import time; from keras_har.data.pipeline import start_parent_watchdog; "
        "start_parent_watchdog(1); time.sleep(20); print('alive')")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "alive" not in result.stdout

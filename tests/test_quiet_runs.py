"""A normal run says nothing that reads like a fault.

Real processes: a recipe run with loader workers under the test's backend
writes no TensorFlow start-up line to stderr, no resource-tracker warning of
leaked semaphores nor of the workers' batches the main process held (see
WORKERS for the one grain can lose), and leaves none of those shared-memory
segments in /dev/shm; `keras-har predict --run-dir` on that run warns nothing about an
optimizer; a preset holds no optimizer state; `import keras_har` leaves the
environment as it was.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import warnings

import h5py
import keras
import numpy as np
import pytest
from test_recipes import dataset_flags

BACKEND = keras.backend.backend()
TF_START_UP = ("oneDNN custom operations", "Could not find cuda drivers", "absl::InitializeLog",
               "cudart_stub", "port.cc")
LEAKED_SHM = re.compile(r"There appear to be (\d+) leaked shared_memory objects")
# grain's own stop (process_prefetch `_stop_prefetch`) can lose the batch a
# worker is handing over at that moment, which the tracker then unlinks and
# reports: at most one per worker. Batches the main process held (what
# `keras_har.data.shared_batches` releases) were one per batch read.
WORKERS = 2

# The recipe in this process, recording the name of every shared-memory
# segment the main process maps (the workers' batches) to a file.
RECORDING_RUN = """
import sys
from multiprocessing import shared_memory
names, record = [], open(sys.argv[1], "w")
attach = shared_memory.SharedMemory.__init__
def recording(self, *args, **kwargs):
    attach(self, *args, **kwargs)
    record.write(self.name + "\\n"); record.flush()
shared_memory.SharedMemory.__init__ = recording
from keras_har.cli import main
sys.exit(main(["train", sys.argv[2], *sys.argv[3:]]))
"""


def env_without(*names):
    return {k: v for k, v in os.environ.items() if k not in names} | {"KERAS_BACKEND": BACKEND}


# A whole recipe run in a process (about a minute on 2 shared cores): under JAX
# and torch, where TensorFlow is only keras-hub's import; the loader's shared
# memory is the same under every backend.
NOT_UNDER_TF = pytest.mark.skipif(BACKEND == "tensorflow", reason="run under jax and torch")


@pytest.fixture(scope="module")
def quiet_run(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("quiet") / "run"
    names = out.parent / "shm_names.txt"
    flags = dataset_flags(tiny_synthetic) + ["--preset", "tiny", "--epochs", "1", "--output-dir", str(out)]
    flags[flags.index("--workers") + 1] = str(WORKERS)
    result = subprocess.run(
        [sys.executable, "-c", RECORDING_RUN, str(names), "baseline-vit-small", *flags],
        capture_output=True, text=True, timeout=600, env=env_without("KERAS_HAR_DEBUG"))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stderr, names.read_text().split()


@NOT_UNDER_TF
def test_a_run_with_workers_ends_without_leaks_or_tensorflow_lines(quiet_run):
    out, stderr, names = quiet_run
    assert (out / "metrics.json").exists()
    leaked = [int(n) for n in LEAKED_SHM.findall(stderr)]
    assert sum(leaked) <= WORKERS, stderr[-3000:]
    for line in stderr.splitlines():
        assert not any(s in line for s in TF_START_UP + ("leaked semaphore",)), line
    assert len(names) >= 4  # the workers' batches did go through shared memory
    left = [n for n in names if pathlib.Path("/dev/shm", n.lstrip("/")).exists()]
    assert not left, left


@NOT_UNDER_TF
def test_predict_on_a_run_warns_nothing(quiet_run, tiny_synthetic):
    out, _, _ = quiet_run
    video = sorted(pathlib.Path(tiny_synthetic[0]).rglob("*.avi"))[0]
    cli = [sys.executable, "-c", "import sys; from keras_har.cli import main; sys.exit(main())"]
    result = subprocess.run(cli + ["predict", str(video), "--run-dir", str(out), "--json"],
                            capture_output=True, text=True, timeout=300, env=env_without("KERAS_HAR_DEBUG"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)[0]["top"]
    assert result.stderr.strip() == "", result.stderr[-3000:]


def test_a_preset_of_a_trained_model_holds_no_optimizer(tmp_path):
    from keras_har.models import VideoMAEBackbone, VideoMAEClassifier

    backbone = VideoMAEBackbone(image_size=16, patch_size=8, num_frames=2, tubelet_size=2, hidden_dim=16,
                                num_layers=1, num_heads=2, mlp_dim=32)
    model = VideoMAEClassifier(backbone, num_classes=3)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(4, 2, 16, 16, 3)).astype("float32")
    model.fit(x, np.eye(3)[[0, 1, 2, 0]], epochs=1, verbose=0)
    model.save_to_preset(str(tmp_path / "preset"))
    with h5py.File(tmp_path / "preset" / "task.weights.h5", "r", locking=False) as f:
        groups = []
        f.visit(groups.append)
    assert groups and not [g for g in groups if "optimizer" in g], groups
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping variable loading for optimizer ..." would raise
        loaded = VideoMAEClassifier.from_preset(str(tmp_path / "preset"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)),
                               atol=1e-6)


def test_import_keras_har_leaves_the_environment_alone():
    script = ("import json, os; before = dict(os.environ); import keras_har; "
              "print(json.dumps({k: os.environ.get(k) for k in set(before) ^ set(os.environ) "
              "| {k for k in before if before[k] != os.environ.get(k)}}))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env=env_without("HDF5_USE_FILE_LOCKING"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}


HELD_OPEN = """
import os, subprocess, sys
path = sys.argv[1]
holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'w'); "
                           "f['x'] = 1; f.flush(); print('open', flush=True); time.sleep(60)", path],
                          stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline().strip() == "open"
from keras_har.utils.import_order import load_backend
load_backend()
import h5py
try:
    with h5py.File(path, "r") as f:
        print(int(f["x"][()]), os.environ.get("HDF5_USE_FILE_LOCKING"))
finally:
    holder.kill()
"""


def test_the_backend_loads_hdf5_without_its_file_locks(tmp_path):
    """What the package loads through `load_backend` (commands, recipes) reads
    an HDF5 file another handle holds open for writing -- HDF5's own lock would
    refuse it (errno 11) -- and the environment is left as it was."""
    result = subprocess.run([sys.executable, "-c", HELD_OPEN, str(tmp_path / "held.h5")], capture_output=True,
                            text=True, timeout=120, env=env_without("HDF5_USE_FILE_LOCKING"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "None"]

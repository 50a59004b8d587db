"""keras-har as a user installs it: a wheel built from the repository, in a
fresh virtual environment, run from a directory outside the checkout. The
training commands need nothing from the checkout."""

import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the fresh environment's bin directory, a working directory outside
    the checkout): the wheel installed without its dependencies, which come
    from this environment's site-packages (a path entry, so the checkout's
    editable install is not used)."""
    tmp = tmp_path_factory.mktemp("packaging")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
         str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("keras_har-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "keras_har/recipes/videomae_two_phase.py" in names and "keras_har/training/recipe.py" in names
    assert not any(n.startswith(("tests/", "recipes/", "benchmarks/")) for n in names)

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    installed = subprocess.run(
        # --ignore-installed: this environment's own (editable) keras-har is left alone.
        [sys.executable, "-m", "pip", "install", "--ignore-installed", "--no-deps", "--no-index", "-q", "--prefix",
         str(venv), str(wheel)],
        capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    pathlib.Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    return venv / "bin", work


def run(installed, *argv, timeout=600):
    bin_dir, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", KERAS_HAR_CACHE=str(work / "cache"))
    # The console script pip wrote, run by the fresh environment's interpreter
    # (its first line names the interpreter pip ran under).
    return subprocess.run([str(bin_dir / "python"), str(bin_dir / "keras-har"), *map(str, argv)],
                          capture_output=True, text=True,
                          timeout=timeout, cwd=work, env=env)


def test_the_installed_package_is_the_wheel(installed):
    bin_dir, work = installed
    proc = subprocess.run([bin_dir / "python", "-c", "import keras_har; print(keras_har.__file__)"],
                          capture_output=True, text=True, cwd=work, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pathlib.Path(proc.stdout.strip()).is_relative_to(bin_dir.parent), proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "jax") != "jax",
                    reason="the package is the same under every backend: run once, in the jax leg")
def test_train_and_pretrain_from_the_wheel(installed, tiny_synthetic):
    videos, splits = tiny_synthetic
    data = ["--dataset", "hmdb51", "--data-root", videos, "--split-dir", splits, "--num-frames", "4",
            "--image-size", "32", "--batch-size", "4", "--workers", "0", "--verbose", "0"]
    proc = run(installed, "train", "videomae-two-phase", *data, "--preset", "tiny", "--epochs-phase1", "1",
               "--epochs-phase2", "1", "--tta-views", "3", "--output-dir", "runs/two_phase")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run_dir = installed[1] / "runs" / "two_phase"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_videos"] == 12 and metrics["protocols"] == ["single_view", "tta", "official"]
    assert f"Run directory: runs/two_phase" in proc.stdout and "3-view TTA top-1" in proc.stdout
    assert (run_dir / "model" / "config.json").exists()

    proc = run(installed, "pretrain", *data, "--preset", "tiny", "--epochs", "1", "--holdout", "2",
               "--reconstructions", "1", "--output-dir", "runs/pretrain")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    metrics = json.loads((installed[1] / "runs" / "pretrain" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["num_videos"] == 24
    assert (installed[1] / "runs" / "pretrain" / "reconstructions.png").exists()

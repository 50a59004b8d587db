"""Both recipes end to end on generated videos in HMDB51's layout (split files
included), under the current backend; resuming a killed run gives the same
result as a run that was never interrupted."""

import csv
import importlib
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_har import data
from keras_har.training import callbacks as callbacks_module

RECIPES = pathlib.Path(__file__).resolve().parents[1] / "recipes"


def load_recipe(name):
    """The packaged recipe behind `recipes/<name>.py` (a `Recipe`: main,
    build_parser, resolve_defaults, build_model, its defaults)."""
    return importlib.import_module(f"keras_har.recipes.{name}").RECIPE


def dataset_flags(tiny_synthetic):
    videos, splits = tiny_synthetic
    return ["--dataset", "hmdb51", "--data-root", str(videos), "--split-dir", str(splits),
            "--num-frames", "4", "--image-size", "32", "--batch-size", "4", "--grad-accum", "1",
            "--workers", "0", "--verbose", "0"]


def videomae_flags(tiny_synthetic, out, epochs=(1, 1)):
    return dataset_flags(tiny_synthetic) + [
        "--preset", "tiny", "--epochs-phase1", str(epochs[0]), "--epochs-phase2", str(epochs[1]),
        "--lr-phase1", "1e-3", "--lr-phase2", "1e-4", "--tta-views", "6", "--output-dir", str(out),
    ]


def history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def reference_run(tiny_synthetic, tmp_path_factory):
    """An uninterrupted two-epochs-per-phase run: (run directory, returned metrics)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    metrics = load_recipe("videomae_two_phase").main(videomae_flags(tiny_synthetic, out, epochs=(2, 2)))
    return out, metrics


def test_videomae_two_phase_end_to_end(tiny_synthetic, reference_run):
    out, metrics = reference_run
    config = json.loads((out / "config.json").read_text())
    assert config["mixup_alpha"] == 0.8 and config["label_smoothing"] == 0.1  # the reference protocol's
    assert config["clip_norm"] == 1.0 and config["weight_decay"] == 0.05
    assert config["backend"] == keras.backend.backend()
    test_set = data.HMDB51(*tiny_synthetic, split=1, subset="test")
    assert data.load_label_map(out / "label_map.json") == test_set.class_names
    for phase in (1, 2):
        rows = history(out / f"history_phase{phase}.csv")
        assert len(rows) == 2 and {"loss", "top1", "val_loss", "val_top1"} <= set(rows[0])
        assert (out / "checkpoints" / f"best_phase{phase}.weights.h5").exists()
    assert (out / "checkpoints" / "last.weights.h5").exists()
    for png in ("curves.png", "confusion_matrix.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["num_videos"] == len(test_set) == 12
    # Checkpoints chosen on a held-out validation set carved from the training
    # split (one video of each class's 4), never on the test split.
    assert saved["selection"] == "validation" and saved["num_val_videos"] == 6
    split = json.loads((out / "split.json").read_text())
    assert split["test"] == test_set.paths and set(split["validation"]).isdisjoint(test_set.paths)
    assert split["num_train_videos"] == 18
    assert saved["backend"] == keras.backend.backend()
    for view in ("single_view", "tta", "official"):
        assert set(saved[view]) == {"top1", "top5", "mean_class_accuracy", "top1_ci95", "num_views",
                                    "per_class_accuracy"}
    assert saved["single_view"] == metrics["single_view"]

    # The saved model, evaluated independently (numpy over model.predict on
    # the centre view of every test video), gives the recorded top-1.
    from keras_har.models.auto import load_classifier

    model = load_classifier(out / "model")
    x = np.stack([
        data.load_video_views(path, num_frames=4, sampling_rate=2, image_size=32,
                              mean=model.image_mean, std=model.image_std)
        for path, _ in test_set.items
    ])
    labels = np.array([label for _, label in test_set.items])
    top1 = float((model.predict(x, verbose=0).argmax(axis=1) == labels).mean())
    assert top1 == pytest.approx(saved["single_view"]["top1"])


def test_baseline_end_to_end(tiny_synthetic, tmp_path):
    recipe = load_recipe("baseline_vit_small")
    out = tmp_path / "run"
    recipe.main(dataset_flags(tiny_synthetic) + ["--preset", "tiny", "--epochs", "1",
                                                 "--output-dir", str(out)])
    config = json.loads((out / "config.json").read_text())
    # The reference protocol's baseline: per-frame crops, constant lr, backbone 1e-4 / head 5e-4.
    assert config["consistent_crops"] is False and config["lr_schedule"] == "constant"
    assert (config["lr_backbone"], config["lr_head"]) == (1e-4, 5e-4)
    assert len(history(out / "history_phase1.csv")) == 1
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["num_videos"] == 12 and 0.0 <= saved["single_view"]["top1"] <= 1.0
    assert (out / "model" / "config.json").exists()


def test_selection_test_keeps_the_seeds_protocol(tiny_synthetic, tmp_path):
    """--selection test: validation on the test split itself (the reference protocol's
    protocol), said in metrics.json and split.json."""
    out = tmp_path / "run"
    load_recipe("baseline_vit_small").main(dataset_flags(tiny_synthetic) + [
        "--preset", "tiny", "--epochs", "1", "--selection", "test", "--output-dir", str(out)])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["selection"] == "test" and saved["num_val_videos"] == saved["num_videos"] == 12
    split = json.loads((out / "split.json").read_text())
    assert split["validation"] == split["test"] and split["num_train_videos"] == 24


class Killed(BaseException):
    """Stands for the process dying right after a checkpoint was written."""


def test_resume_after_kills_matches_an_uninterrupted_run(tiny_synthetic, reference_run, tmp_path,
                                                         monkeypatch):
    """Killed after the first epoch of phase 1, resumed; killed again after the
    first epoch of phase 2, resumed: the same history and metrics as a run
    that was never interrupted (optimizer state, schedule position and data
    order all continue)."""
    recipe = load_recipe("videomae_two_phase")
    reference, _ = reference_run
    out = tmp_path / "run"
    original = callbacks_module.RunCheckpoint.on_epoch_end

    def kill_in(phase):
        def on_epoch_end(self, epoch, logs=None):
            original(self, epoch, logs)
            if self.phase == phase:
                raise Killed
        monkeypatch.setattr(callbacks_module.RunCheckpoint, "on_epoch_end", on_epoch_end)

    kill_in(1)
    with pytest.raises(Killed):
        recipe.main(videomae_flags(tiny_synthetic, out, epochs=(2, 2)))
    state = json.loads((out / "state.json").read_text())
    assert state["phase1_epochs_done"] == 1 and "phase2_epochs_done" not in state

    kill_in(2)  # flags other than --resume come from the run's config.json
    with pytest.raises(Killed):
        recipe.main(["--resume", str(out), "--verbose", "0"])
    state = json.loads((out / "state.json").read_text())
    assert (state["phase1_epochs_done"], state["phase2_epochs_done"]) == (2, 1)
    assert not (out / "metrics.json").exists()

    monkeypatch.setattr(callbacks_module.RunCheckpoint, "on_epoch_end", original)
    recipe.main(["--resume", str(out), "--verbose", "0"])
    for k in (1, 2):
        a, b = history(reference / f"history_phase{k}.csv"), history(out / f"history_phase{k}.csv")
        assert [r["epoch"] for r in b] == ["0", "1"]
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose([float(r[key]) for r in b], [float(r[key]) for r in a],
                                       rtol=1e-4, atol=1e-5)
    ref_metrics = json.loads((reference / "metrics.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    for view in ("single_view", "tta", "official"):
        assert metrics[view] == ref_metrics[view]


def test_evaluate_writes_the_recipes_metrics_schema(reference_run, tmp_path):
    """`keras-har evaluate` and the recipe's final evaluation write one
    metrics.json schema: the same keys, and the same numbers for a protocol
    both evaluated on the same run (the recipe's TTA from its one-decode
    protocols, evaluate's from its own 6-view loader)."""
    from keras_har.cli import main

    out, _ = reference_run
    assert main(["evaluate", "--run-dir", str(out), "--views", "tta", "--workers", "0",
                 "--output", str(tmp_path / "eval")]) == 0
    recipe = json.loads((out / "metrics.json").read_text())
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert recipe["protocols"] == ["single_view", "tta", "official"] and evaluated["protocols"] == ["tta"]
    assert set(evaluated) == set(recipe) - {"single_view", "official", "synthetic"}
    assert set(evaluated["tta"]) == set(recipe["tta"])
    assert evaluated["tta"]["top1"] == pytest.approx(recipe["tta"]["top1"])
    assert evaluated["tta"]["per_class_accuracy"] == pytest.approx(recipe["tta"]["per_class_accuracy"])
    assert evaluated["num_videos"] == recipe["num_videos"] and evaluated["clip"] == recipe["clip"]


def test_resume_refuses_a_directory_without_a_run(tmp_path):
    recipe = load_recipe("videomae_two_phase")
    with pytest.raises(SystemExit):
        recipe.main(["--resume", str(tmp_path)])


USER_SCRIPT = """
import os, sys
if __name__ == "__mp_main__":  # this script run again in a spawned process
    with open(os.environ["MARKER"], "a") as f:
        f.write(f"{os.getpid()}\\n")
import keras  # a user's own script: Keras at the top, no import guard
from keras_har import data

if __name__ == "__main__":
    ds = data.HMDB51(sys.argv[1], sys.argv[2], split=1, subset="train")
    with data.make_loader(ds, training=True, batch_size=4, num_frames=4, image_size=32, mean=(0.5,) * 3,
                          std=(0.5,) * 3, workers=2, epochs=1) as loader:
        print("batches", sum(1 for _ in loader))
    import multiprocessing  # another process the script spawns still runs it, as Python does
    p = multiprocessing.get_context("spawn").Process(target=print)
    p.start(); p.join()
"""


def test_loader_workers_do_not_run_the_main_script(tiny_synthetic, tmp_path):
    """multiprocessing's spawn runs the main script again in every new process
    (as `__mp_main__`); a keras-har loader's grain workers skip it, so a
    user's script that imports Keras at the top needs no `__mp_main__`
    guard for light workers. The oracle: a file the script appends to
    whenever it runs as `__mp_main__` (one line: the process the script
    spawns itself, not the two loader workers)."""
    script, marker = tmp_path / "user_script.py", tmp_path / "marker"
    script.write_text(USER_SCRIPT)
    env = {**os.environ, "MARKER": str(marker)}
    proc = subprocess.run([sys.executable, str(script), *map(str, tiny_synthetic)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = len(data.HMDB51(*tiny_synthetic, split=1, subset="train")) // 4
    assert f"batches {expected}" in proc.stdout, proc.stdout
    assert len(marker.read_text().split()) == 1, marker.read_text()


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="the scripts' command lines are the same under every backend: checked once, under jax")
def test_recipe_scripts_are_the_commands():
    """recipes/*.py run `keras-har train NAME` / `keras-har pretrain` (the
    packaged recipes): their --help is the command's."""
    for script, command in (("videomae_two_phase", "keras-har train videomae-two-phase"),
                            ("baseline_vit_small", "keras-har train baseline-vit-small"),
                            ("videomae_pretrain", "keras-har pretrain")):
        proc = subprocess.run([sys.executable, str(RECIPES / f"{script}.py"), "--help"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.startswith(f"usage: {command} "), proc.stdout[:200]
        assert "--output-dir" in proc.stdout and "--dataset" in proc.stdout

"""The `keras-har` command line: predict, evaluate and convert against oracles.

A "finished run directory" is built cheaply (a tiny VideoMAE saved with
`save_to_preset`, the config.json a recipe writes); no recipe is run. Commands
run in-process through `keras_har.cli.main`, and the installed console script
once as a subprocess.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import moving_square_frames, write_video
from keras_har import cli, data, evaluation
from keras_har.models import VideoMAEBackbone, VideoMAEClassifier
from keras_har.models.auto import load_classifier

NUM_FRAMES, SAMPLING_RATE, IMAGE_SIZE = 4, 2, 32
SCRIPT = pathlib.Path(sys.executable).parent / "keras-har"


@pytest.fixture(scope="module")
def run(tiny_synthetic, tmp_path_factory):
    """(run_dir, the in-memory model that was saved, test dataset index)."""
    videos, splits = tiny_synthetic
    test_set = data.HMDB51(videos, splits, split=1, subset="test")
    keras.utils.set_random_seed(7)
    backbone = VideoMAEBackbone(image_size=IMAGE_SIZE, patch_size=8, num_frames=NUM_FRAMES, tubelet_size=2,
                                hidden_dim=32, num_layers=1, num_heads=4, mlp_dim=64)
    model = VideoMAEClassifier(backbone, labels=test_set.class_names)
    # A head with some spread, so that top-k orders are not near ties.
    kernel = model.predictions.kernel
    kernel.assign(np.random.default_rng(0).normal(0, 0.5, kernel.shape).astype("float32"))
    run_dir = tmp_path_factory.mktemp("run") / "videomae_two_phase-20250101-000000"
    run_dir.mkdir()
    model.save_to_preset(str(run_dir / "model"))
    # What the recipes write (experiment.make_run_dir: every flag + backend).
    config = dict(
        dataset="synthetic", data_root=str(videos.parent), split_dir=None, split=1, train_list=None,
        val_list=None, num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE, image_size=IMAGE_SIZE,
        loader="grain", workers=0, on_bad_video="skip", output_dir=str(run_dir), resume=None, seed=0,
        preset="tiny", batch_size=16, tta_views=6, backend=keras.backend.backend(),
    )
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    test_set.save_label_map(run_dir / "label_map.json")
    return run_dir, model, test_set


def oracle_logits(model, path, views="single", num_clips=1):
    """Per-view logits `(V, C)` from model.predict on load_video_views' output."""
    x = data.load_video_views(path, num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE,
                              image_size=IMAGE_SIZE, mean=model.image_mean, std=model.image_std,
                              views=views, num_clips=num_clips)
    x = x[None] if x.ndim == 4 else x
    return model.predict(x, verbose=0).astype("float64")


def np_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """.avi files of different lengths and resolutions (landscape, portrait,
    smaller than the crop, shorter than a clip)."""
    out = tmp_path_factory.mktemp("clips")
    paths = []
    for i, (frames, height, width) in enumerate([(12, 48, 64), (3, 20, 28), (30, 72, 40)]):
        path = out / f"clip_{i}_{frames}x{height}x{width}.avi"
        write_video(path, moving_square_frames(frames, height, width, seed=i))
        paths.append(str(path))
    return paths


def run_main(argv, capfd):
    code = cli.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, out, err


# ---------------------------------------------------------------- predict


def test_predict_json_is_softmax_of_the_model_logits(run, clips, capfd):
    run_dir, model, test_set = run
    code, out, err = run_main(["predict", *clips, "--run-dir", run_dir, "--json"], capfd)
    assert code == 0, err
    results = json.loads(out)
    assert [r["video"] for r in results] == clips
    for r, path in zip(results, clips):
        probs = np_softmax(oracle_logits(model, path)[0])
        order = np.argsort(-probs, kind="stable")[:5]
        assert [t["label"] for t in r["top"]] == [test_set.class_names[i] for i in order]
        np.testing.assert_allclose([t["probability"] for t in r["top"]], probs[order], atol=2e-5)
        assert r["num_views"] == 1


def test_predict_text_output_and_top_k(run, clips, capfd):
    run_dir, model, _ = run
    code, out, err = run_main(["predict", clips[0], "--run-dir", run_dir, "--top-k", "2"], capfd)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == clips[0] and len(lines) == 3
    probs = np_softmax(oracle_logits(model, clips[0])[0])
    best = int(np.argmax(probs))
    assert lines[1].split() == [f"{probs[best]:.2%}", model.class_names[best]]


@pytest.mark.parametrize("views,extra,count", [("tta", [], 6), ("official", ["--num-clips", "2"], 6)])
def test_predict_multi_view_averages_per_view_logits_or_probabilities(run, clips, capfd, views, extra, count):
    run_dir, model, _ = run
    video = clips[2]  # portrait: the three crops run top to bottom
    code, out, err = run_main(["predict", video, "--preset", run_dir / "model", "--views", views,
                               "--num-frames", NUM_FRAMES, "--sampling-rate", SAMPLING_RATE, "--json", *extra],
                              capfd)
    assert code == 0, err
    [result] = json.loads(out)
    pipeline_views = "tta6" if views == "tta" else views
    per_view = oracle_logits(model, video, pipeline_views, num_clips=2)
    assert per_view.shape[0] == count == result["num_views"]
    assert np.ptp(per_view, axis=0).max() > 1e-3  # the views do differ
    # tta: the reference protocol's mean of logits; official: VideoMAE's mean of probabilities
    if views == "tta":
        probs = np_softmax(per_view.mean(axis=0))
    else:
        e = np.exp(per_view - per_view.max(axis=1, keepdims=True))
        probs = (e / e.sum(axis=1, keepdims=True)).mean(axis=0)
    order = np.argsort(-probs, kind="stable")[:5]
    assert [t["label"] for t in result["top"]] == [model.class_names[i] for i in order]
    np.testing.assert_allclose([t["probability"] for t in result["top"]], probs[order], atol=2e-5)


def test_predict_reports_bad_videos_and_labels_the_rest(run, clips, tmp_path, capfd):
    run_dir, _, _ = run
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    code, out, err = run_main(["predict", clips[0], str(corrupt), "--run-dir", run_dir, "--json"], capfd)
    assert code == 2
    assert err.splitlines() == [err.strip()] and str(corrupt) in err
    results = json.loads(out)
    assert "top" in results[0] and results[1] == {"video": str(corrupt), "error": results[1]["error"]}


# ---------------------------------------------------------------- evaluate


def hand_metrics(model, test_set, views="single"):
    """top-1 and per-video predictions from model.predict, video by video."""
    predicted = [int(np.argmax(oracle_logits(model, p, views).mean(axis=0))) for p, _ in test_set.items]
    labels = [label for _, label in test_set.items]
    return float(np.mean(np.equal(predicted, labels))), [test_set.class_names[i] for i in predicted]


def test_evaluate_run_dir_writes_metrics_and_plot(run, capfd):
    run_dir, model, test_set = run
    code, out, err = run_main(["evaluate", "--run-dir", run_dir], capfd)
    assert code == 0, err
    out_dir = run_dir / "evaluation-single"
    metrics = json.loads((out_dir / "metrics.json").read_text())
    top1, predicted = hand_metrics(model, test_set)
    # The recipes' metrics.json schema (evaluation.test_metrics), with the protocol evaluated.
    assert metrics["protocols"] == ["single_view"] and metrics["single_view"]["num_views"] == 1
    assert metrics["single_view"]["top1"] == pytest.approx(top1)
    assert metrics["num_videos"] == len(test_set) == 12
    assert metrics["clip"] == {"num_frames": NUM_FRAMES, "sampling_rate": SAMPLING_RATE, "image_size": IMAGE_SIZE}
    assert metrics["backend"] == keras.backend.backend()
    assert metrics["skipped_videos"] == {"train": [], "test": []}
    assert (out_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    full = json.loads((out_dir / "evaluation.json").read_text())["single_view"]
    assert [p["predicted"] for p in full["predictions"]] == predicted
    assert [p["path"] for p in full["predictions"]] == [p for p, _ in test_set.items]
    assert np.sum(full["confusion_matrix"]) == 12
    assert f"top-1 {top1:.4f}" in out
    assert not (run_dir / "metrics.json").exists()  # the recipe's own metrics are left alone


def test_evaluate_preset_with_dataset_flags_tta(run, tiny_synthetic, tmp_path, capfd):
    run_dir, model, test_set = run
    videos, splits = tiny_synthetic
    code, out, err = run_main(
        ["evaluate", "--preset", run_dir / "model", "--dataset", "hmdb51", "--data-root", videos,
         "--split-dir", splits, "--num-frames", NUM_FRAMES, "--views", "tta", "--workers", "0",
         "--output", tmp_path / "eval"], capfd)
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["protocols"] == ["tta"] and metrics["tta"]["num_views"] == 6 and metrics["tta_views"] == 6
    assert metrics["tta"]["top1"] == pytest.approx(hand_metrics(model, test_set, "tta6")[0])
    assert (tmp_path / "eval" / "confusion_matrix.png").exists()


# ---------------------------------------------------------------- convert


def test_convert_hugging_face_videomae(tmp_path, capfd):
    import torch
    from test_videomae import make_checkpoint, videos_for

    hf = make_checkpoint(tmp_path / "hf")
    code, out, err = run_main(["convert", tmp_path / "hf", tmp_path / "ours"], capfd)
    assert code == 0, err
    assert "VideoMAEClassifier" in out and (tmp_path / "ours" / "task.json").exists()
    pt_x, x = videos_for(hf.config)
    with torch.no_grad():
        expected = hf(pixel_values=pt_x).logits.numpy()
    model = load_classifier(tmp_path / "ours")
    assert isinstance(model, VideoMAEClassifier) and model.class_names == [f"action_{i}" for i in range(5)]
    np.testing.assert_allclose(model.predict_on_batch(x), expected, atol=1e-4)

    # An existing preset is only replaced with --overwrite.
    code, out, err = run_main(["convert", tmp_path / "hf", tmp_path / "ours"], capfd)
    assert code == 2 and len(err.splitlines()) == 1 and "--overwrite" in err
    code, out, err = run_main(["convert", tmp_path / "hf", tmp_path / "ours", "--overwrite",
                               "--num-classes", "3"], capfd)
    assert code == 0
    assert json.loads((tmp_path / "ours" / "task.json").read_text())["config"]["num_classes"] == 3


def test_convert_timm_vit(tmp_path, capfd):
    timm = pytest.importorskip("timm")
    from timm.models._hub import save_for_hf

    from conftest import tiny_vit_config
    from keras_har.models import MeanPooledViTClassifier
    from test_mean_pooled_vit import perturbed, random_videos, timm_clip_logits

    timm_model = perturbed(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7,
                                             **tiny_vit_config()))
    save_for_hf(timm_model, tmp_path / "timm", model_args={"num_heads": 4}, safe_serialization=True)
    code, out, err = run_main(["convert", tmp_path / "timm", tmp_path / "ours"], capfd)
    assert code == 0, err
    model = load_classifier(tmp_path / "ours")
    assert isinstance(model, MeanPooledViTClassifier) and model.num_classes == 7
    videos = random_videos(frames=3)
    np.testing.assert_allclose(model.predict_on_batch(videos),
                               timm_clip_logits(timm_model, videos), atol=1e-4)


# ---------------------------------------------------------------- errors and help


def bad_inputs(run_dir, tmp_path, clip):
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(np.random.default_rng(1).bytes(4096))
    not_preset = tmp_path / "not_a_preset"
    not_preset.mkdir()
    (not_preset / "notes.txt").write_text("hello")
    no_model = tmp_path / "unfinished_run"
    no_model.mkdir()
    other = tmp_path / "other_classes" / "dance"
    other.mkdir(parents=True)
    write_video(other / "d.avi", moving_square_frames(4, 32, 32))
    return {
        "missing video": (["predict", tmp_path / "missing.avi", "--run-dir", run_dir], "missing.avi"),
        "corrupt video": (["predict", corrupt, "--run-dir", run_dir], "corrupt.avi"),
        "directory as video": (["predict", tmp_path, "--run-dir", run_dir], str(tmp_path)),
        "missing run dir": (["predict", clip, "--run-dir", tmp_path / "no_run"], "no_run"),
        "run dir without model": (["evaluate", "--run-dir", no_model], "unfinished_run"),
        "not a preset": (["predict", clip, "--preset", not_preset], "not_a_preset"),
        "missing preset": (["evaluate", "--preset", tmp_path / "nope", "--dataset", "folder",
                            "--data-root", tmp_path], "nope"),
        "missing data root": (["evaluate", "--run-dir", run_dir, "--dataset", "folder",
                               "--data-root", tmp_path / "no_videos"], "no_videos"),
        "other classes": (["evaluate", "--run-dir", run_dir, "--dataset", "folder",
                           "--data-root", other.parent], "dance"),
        "frames the model does not take": (["predict", clip, "--run-dir", run_dir, "--num-frames", "6"],
                                           "6"),
        "convert missing source": (["convert", tmp_path / "no_ckpt", tmp_path / "out"], "no_ckpt"),
        "convert non-preset source": (["convert", not_preset, tmp_path / "out"], "not_a_preset"),
    }


CASES = ["missing video", "corrupt video", "directory as video", "missing run dir", "run dir without model",
         "not a preset", "missing preset", "missing data root", "other classes",
         "frames the model does not take", "convert missing source", "convert non-preset source"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(run, clips, tmp_path, capfd, case):
    argv, name = bad_inputs(run[0], tmp_path, clips[0])[case]
    code, out, err = run_main(argv, capfd)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"keras-har {argv[0]}: error: ") and name in err
    assert out == ""


def test_bad_numbers_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", "x.avi", "--preset", "p", "--top-k", "0"])
    assert exit_info.value.code == 2 and "--top-k: must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("command,words", [
    ("evaluate", ["metrics.json", "confusion_matrix.png", "--run-dir", "--preset", "--dataset", "--views"]),
    ("predict", ["top-k", "any length", "--json", "--views"]),
    ("convert", ["Hugging Face", "timm", "SRC", "DEST", "--overwrite"]),
])
def test_subcommand_help(command, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in words:
        assert word in text, word


def test_console_script_help_and_a_bad_video(tmp_path):
    """The installed entry point, in a fresh process: --help, then a corrupt
    video (fails before any model is loaded) as exactly one stderr line."""
    assert SCRIPT.exists(), f"{SCRIPT} is not installed (pip install -e .)"
    env = {**os.environ}
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0
    for command in ("evaluate", "predict", "convert"):
        assert command in done.stdout
    corrupt = tmp_path / "broken.avi"
    corrupt.write_bytes(b"RIFF" + np.random.default_rng(2).bytes(2000))
    done = subprocess.run([str(SCRIPT), "predict", str(corrupt), "--preset", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"keras-har predict: error: {corrupt}: ")


def test_import_and_help_stay_light():
    """`import keras_har` and building the parser load no Keras, keras-hub or TF;
    `keras_har.evaluate` is there on first use."""
    code = ("import sys, keras_har, keras_har.cli as c; c.build_parser();"
            "heavy = sorted(m for m in ('keras', 'keras_hub', 'tensorflow', 'jax', 'torch') if m in sys.modules);"
            "assert not heavy, heavy; import keras_har.evaluation as e;"
            "assert keras_har.evaluate is e.evaluate; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr

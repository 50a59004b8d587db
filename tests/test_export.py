"""Export (`keras_har.export`) and exported-model runtimes (`keras_har.runtimes`).

Oracle: the Keras model's own logits on real decoded clips. Every format the
current backend exports is written, loaded by its own runtime (ONNX Runtime,
OpenVINO, TensorFlow, LiteRT) and run on batches of 1 and 3 clips: within
1e-4 of Keras in float32. The (format, backend) pairs Keras cannot export are
written by a subprocess under TensorFlow: the same check on that file.
Runtimes or exporters that are not installed skip with a message.
"""

import importlib.util
import json
import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest

from conftest import moving_square_frames, write_video
from keras_har import data, export, runtimes
from keras_har.models import MeanPooledViTClassifier, VideoMAEBackbone, VideoMAEClassifier

NUM_FRAMES, SAMPLING_RATE, IMAGE_SIZE = 4, 2, 32
LABELS = ["wave", "run", "jump", "sit", "clap"]
RUNTIME_PACKAGE = {"onnx": "onnxruntime", "openvino": "openvino", "saved_model": "tensorflow",
                   "litert": "ai_edge_litert"}
BACKEND = keras.backend.backend()


def tiny_videomae():
    backbone = VideoMAEBackbone(image_size=IMAGE_SIZE, patch_size=8, num_frames=NUM_FRAMES,
                                tubelet_size=2, hidden_dim=32, num_layers=1, num_heads=4,
                                mlp_dim=64)
    return VideoMAEClassifier(backbone, labels=LABELS)


def tiny_vit():
    backbone = keras_hub.models.ViTBackbone(image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), patch_size=8,
                                            num_layers=1, num_heads=4, hidden_dim=32, mlp_dim=64)
    return MeanPooledViTClassifier(backbone, labels=LABELS)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(3)
    built = {"videomae": tiny_videomae(), "vit": tiny_vit()}
    for model in built.values():  # a head with spread: logits far from 0
        kernel = model.predictions.kernel
        kernel.assign(np.random.default_rng(0).normal(0, 0.5, kernel.shape).astype("float32"))
    return built


@pytest.fixture(scope="module")
def clip_paths(tmp_path_factory):
    out = tmp_path_factory.mktemp("export_clips")
    return [str(write_video(out / f"clip_{i}.avi", moving_square_frames(10, 40, 56, seed=i)))
            for i in range(3)]


def decoded_batch(paths, config):
    """Clips decoded and normalised with the deployment config's constants only."""
    p = config["preprocessing"]
    return np.stack([data.load_video_views(path, num_frames=p["num_frames"],
                                           sampling_rate=p["sampling_rate"],
                                           image_size=p["image_size"], mean=p["mean"],
                                           std=p["std"]) for path in paths])


def output_path(tmp_path, format):
    return tmp_path / ("model" + export.SUFFIX[format] if export.SUFFIX[format] else "saved_model")


def exported(model, tmp_path, format):
    """Export `model` (skipping when the exporter or runtime is missing)."""
    exporters = export.EXPORTING_BACKENDS[format]
    if BACKEND not in exporters:
        pytest.skip(f"{format} is not exported from {BACKEND} itself (see test_export_runs_under_a_backend_that_can)")
    for package in (exporters[BACKEND], RUNTIME_PACKAGE[format]):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install 'keras-har[export]')")
    path = output_path(tmp_path, format)
    export.export_classifier(model, path, format, num_frames=NUM_FRAMES,
                             sampling_rate=SAMPLING_RATE, image_size=IMAGE_SIZE)
    return path


@pytest.mark.parametrize("format", export.FORMATS)
@pytest.mark.parametrize("arch", ["videomae", "vit"])
def test_exported_logits_match_keras(models, clip_paths, tmp_path, arch, format):
    model = models[arch]
    path = exported(model, tmp_path, format)
    loaded = runtimes.load_exported(path)
    assert loaded.runtime == {"onnx": "onnxruntime", "openvino": "openvino",
                              "saved_model": "tensorflow", "litert": "litert"}[format]
    config = json.loads(runtimes.settings_path(path).read_text())
    assert config["labels"] == LABELS == loaded.class_names
    assert config["preprocessing"]["mean"] == list(model.image_mean)
    assert config["input"]["shape"] == [None, NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3]
    if format == "onnx":  # the input name a program feeds
        import onnxruntime

        assert config["input"]["name"] == onnxruntime.InferenceSession(str(path)).get_inputs()[0].name
    elif format == "openvino":
        import openvino

        assert config["input"]["name"] == openvino.Core().read_model(str(path)).inputs[0].get_any_name()
    x = decoded_batch(clip_paths, config)
    expected = np.asarray(model.predict(x, verbose=0))
    assert np.ptp(expected) > 0.1  # the clips give different, non-trivial logits
    for batch in (1, 3):  # a dynamic batch size
        got = loaded(x[:batch])
        assert got.shape == (batch, len(LABELS))
        np.testing.assert_allclose(got, expected[:batch], atol=1e-4, rtol=0)
        np.testing.assert_allclose(runtimes.view_logits(loaded, x[None, :batch]),
                                   expected[:batch].mean(0, keepdims=True), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="expects a batch"):
        loaded(x[:, :2])  # wrong frame count: a clear error, not a runtime crash


@pytest.mark.parametrize("format", ["onnx", "openvino"])
def test_export_runs_under_a_backend_that_can(models, clip_paths, tmp_path, format):
    """Under a backend that cannot write `format` (jax: both; torch: onnx) the
    export runs on its own in a TensorFlow subprocess: the file gives the Keras
    model's logits in its runtime, and no temporary file is left."""
    if BACKEND in export.EXPORTING_BACKENDS[format]:
        pytest.skip(f"{BACKEND} exports {format} itself (test_exported_logits_match_keras)")
    for package in ("tensorflow", export.EXPORTING_BACKENDS[format]["tensorflow"], RUNTIME_PACKAGE[format]):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install 'keras-har[export]')")
    model = models["videomae"]
    path = output_path(tmp_path, format)
    settings = export.export_classifier(model, path, format, num_frames=NUM_FRAMES,
                                        sampling_rate=SAMPLING_RATE, image_size=IMAGE_SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"onnx": ["model.onnx", "model.onnx.json"], "openvino": ["model.xml", "model.bin", "model.xml.json"]}[format])
    config = json.loads(settings.read_text())
    assert config["exported_by"]["backend"] == "tensorflow" and config["labels"] == LABELS
    loaded = runtimes.load_exported(path)
    x = decoded_batch(clip_paths, config)
    expected = np.asarray(model.predict(x, verbose=0))
    assert np.ptp(expected) > 0.1
    for batch in (1, 3):
        np.testing.assert_allclose(loaded(x[:batch]), expected[:batch], atol=1e-4, rtol=0)


def test_bad_output_paths_and_exported_files(models, tmp_path):
    with pytest.raises(export.ExportError, match=r"must end in \.tflite"):
        export.check_export("litert", tmp_path / "model.onnx", "tensorflow")
    with pytest.raises(export.ExportError, match="format must be one of"):
        export.check_export("coreml", tmp_path / "model.mlpackage", BACKEND)
    with pytest.raises(runtimes.ExportedModelError, match="not an exported model"):
        runtimes.load_exported(tmp_path / "model.keras")
    with pytest.raises(runtimes.ExportedModelError, match="no such file"):
        runtimes.load_exported(tmp_path / "missing.onnx")
    (tmp_path / "notes").mkdir()
    with pytest.raises(runtimes.ExportedModelError, match="without saved_model.pb"):
        runtimes.load_exported(tmp_path / "notes")
    (tmp_path / "orphan.onnx").write_bytes(b"not onnx")
    with pytest.raises(runtimes.ExportedModelError, match=r"orphan\.onnx\.json: missing"):
        runtimes.load_exported(tmp_path / "orphan.onnx")


def first_exportable_format():
    for format in ("onnx", "openvino", "litert", "saved_model"):
        if BACKEND in export.EXPORTING_BACKENDS[format] and importlib.util.find_spec(
                RUNTIME_PACKAGE[format]):
            return format
    pytest.skip(f"no runtime installed for a format {BACKEND} exports")


def test_predict_exported_imports_no_keras_or_training_backend(models, clip_paths, tmp_path):
    """A deployment can drop Keras: `keras-har predict --exported` imports
    neither Keras, keras-hub nor a training backend -- except what the runtime
    package itself loads (TensorFlow 2.21, the SavedModel runtime, imports
    keras on its own)."""
    format = first_exportable_format()
    path = exported(models["videomae"], tmp_path, format)
    forbidden = {"keras", "keras_hub", "jax", "torch", "tensorflow"}
    script = (
        "import sys, json\n"
        f"import {RUNTIME_PACKAGE[format]}\n"
        "base = set(sys.modules)\n"
        "from keras_har import cli\n"
        f"code = cli.main(['predict', {clip_paths[0]!r}, '--exported', {str(path)!r}, '--json'])\n"
        "top = lambda names: sorted({k.split('.')[0] for k in names})\n"
        "print(json.dumps({'code': code, 'added': top(set(sys.modules) - base), 'runtime': top(base)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    *predictions, modules = out.stdout.strip().splitlines()
    result = json.loads(modules)
    assert result["code"] == 0
    assert not forbidden & set(result["added"]), sorted(forbidden & set(result["added"]))
    if format != "saved_model":  # ONNX Runtime, OpenVINO, LiteRT load none of them either
        assert not forbidden & set(result["runtime"]), sorted(forbidden & set(result["runtime"]))
    (prediction,) = json.loads("\n".join(predictions))
    config = json.loads(runtimes.settings_path(path).read_text())
    expected = models["videomae"].predict(decoded_batch(clip_paths[:1], config), verbose=0)[0]
    probs = np.exp(expected - expected.max()) / np.exp(expected - expected.max()).sum()
    top = np.argsort(-probs)
    assert [t["label"] for t in prediction["top"]] == [LABELS[i] for i in top]
    np.testing.assert_allclose([t["probability"] for t in prediction["top"]], probs[top], atol=1e-5)


@pytest.fixture(scope="module")
def run_dir(models, tmp_path_factory):
    """A finished run directory (as tests/test_cli.py builds it): the tiny
    VideoMAE saved as a preset and the config.json of its clip settings."""
    run = tmp_path_factory.mktemp("export_run") / "videomae-run"
    run.mkdir()
    models["videomae"].save_to_preset(str(run / "model"))
    (run / "config.json").write_text(json.dumps(
        {"num_frames": NUM_FRAMES, "sampling_rate": SAMPLING_RATE, "image_size": IMAGE_SIZE}))
    return run


def cli_json(capsys, argv):
    from keras_har import cli

    capsys.readouterr()
    code = cli.main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_cli_export_then_predict_exported(run_dir, clip_paths, tmp_path, capsys):
    """keras-har export, then predict --exported: the same labels and
    probabilities as predict with the run's Keras model, for one view and 6."""
    from keras_har import cli

    format = first_exportable_format()
    path = output_path(tmp_path, format)
    assert cli.main(["export", "--run-dir", str(run_dir), "--format", format, "--output", str(path)]) == 0
    assert "wrote" in capsys.readouterr().out and runtimes.settings_path(path).exists()
    for views in ("single", "tta"):
        keras_out = cli_json(capsys, ["predict", *clip_paths, "--run-dir", str(run_dir),
                                      "--views", views, "--json", "--top-k", "3"])
        exported_out = cli_json(capsys, ["predict", *clip_paths, "--exported", str(path),
                                         "--views", views, "--json", "--top-k", "3"])
        assert len(exported_out) == len(clip_paths)
        for k, e in zip(keras_out, exported_out):
            assert (e["video"], e["views"], e["num_views"]) == (k["video"], k["views"], k["num_views"])
            assert [t["label"] for t in e["top"]] == [t["label"] for t in k["top"]]
            np.testing.assert_allclose([t["probability"] for t in e["top"]],
                                       [t["probability"] for t in k["top"]], atol=1e-5)
    # The runtime named explicitly (--runtime) gives the same as the one PATH implies.
    named = cli_json(capsys, ["predict", *clip_paths, "--exported", str(path), "--runtime",
                              runtimes.runtime_for(path), "--json", "--top-k", "3"])
    assert named == cli_json(capsys, ["predict", *clip_paths, "--exported", str(path), "--json", "--top-k", "3"])
    # An existing output is not replaced silently.
    assert cli.main(["export", "--run-dir", str(run_dir), "--format", format, "--output", str(path)]) == 2
    assert "exists (pass --overwrite)" in capsys.readouterr().err


def test_predict_exported_precision(run_dir, clip_paths, tmp_path, capsys):
    """predict --exported --precision bfloat16 runs OpenVINO in bf16: the
    float32 labels, probabilities within bf16's error; a runtime without a
    precision setting is one clear line."""
    from keras_har import cli

    if BACKEND not in export.EXPORTING_BACKENDS["openvino"]:
        pytest.skip(f"{BACKEND} does not export OpenVINO")
    pytest.importorskip("openvino")
    path = output_path(tmp_path, "openvino")
    assert cli.main(["export", "--run-dir", str(run_dir), "--format", "openvino", "--output", str(path)]) == 0
    args = ["predict", *clip_paths, "--exported", str(path), "--json", "--top-k", "3"]
    full = cli_json(capsys, args)
    half = cli_json(capsys, args + ["--precision", "bfloat16"])
    for f, h in zip(full, half):
        if f["top"][0]["probability"] - f["top"][1]["probability"] > 0.02:  # a margin bf16 cannot flip
            assert h["top"][0]["label"] == f["top"][0]["label"]
        probs = {t["label"]: t["probability"] for t in f["top"]}
        for t in h["top"]:
            if t["label"] in probs:
                assert abs(t["probability"] - probs[t["label"]]) < 2e-2, (t, f["top"])
    capsys.readouterr()
    assert cli.main(args + ["--precision", "bfloat16", "--runtime", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is for OpenVINO" in err[0], err


def test_cli_export_errors_are_one_line(run_dir, clip_paths, tmp_path, capsys):
    from keras_har import cli

    supported = next(f for f in export.FORMATS if BACKEND in export.EXPORTING_BACKENDS[f])
    wrong = {"saved_model": ("m.onnx", "a SavedModel is a directory")}.get(
        supported, ("m.bogus", f"must end in {export.SUFFIX[supported]}"))
    cases = [(["--format", supported, "--output", str(tmp_path / wrong[0])], wrong[1])]
    for argv, message in cases:
        capsys.readouterr()
        assert cli.main(["export", "--run-dir", str(run_dir), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    for argv, message in [
        (["--exported", str(tmp_path / "none.onnx")], "none.onnx: no such file"),
        (["--exported", "m.onnx", "--run-dir", str(run_dir)], "not both"),
        (["--run-dir", str(run_dir), "--runtime", "onnxruntime"], "--runtime is for --exported"),
        (["--run-dir", str(run_dir), "--precision", "bfloat16"], "--precision is for --exported"),
        (["--run-dir", str(run_dir), "--stride", "1"], "--stride is for --window"),
        (["--run-dir", str(run_dir), "--window", "1", "--views", "official"], "--window takes"),
    ]:
        capsys.readouterr()
        assert cli.main(["predict", clip_paths[0], *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err

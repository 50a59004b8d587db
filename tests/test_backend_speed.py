"""`benchmarks/backend_speed.py --quick` runs on the current backend (beside the
PyTorch references), reports a progress line per row and writes JSON in the
documented schema; the target check reads the rows it should."""

import importlib
import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "backend_speed.py"
ROW_KEYS = {"model", "impl", "backend", "dtype", "mode", "batch_size", "clips_per_s", "ratio_vs_reference",
            "achieved_gflops", "peak_fraction", "matmul_peak_gflops", "peak_rss_mb", "compile_time_s",
            "device"}


def load_speed_module(name):
    """benchmarks/speed/<name>.py, imported as when backend_speed.py runs as a script (benchmarks/ on the path)."""
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    return importlib.import_module(f"speed.{name}")


def test_backend_speed_quick_writes_json(tmp_path):
    backend = keras.backend.backend()
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--backends", backend, "--repeats", "2",
         "--exported", "none", "--modes", "inference1,inference4,train2,pretrain2"],  # exported rows: tests/test_export_benchmark.py
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"cpu", "cpu_count", "load_average_before", "allocator"} <= set(report["machine"])
    rows = report["results"]
    for row in rows:
        assert ROW_KEYS <= set(row), sorted(ROW_KEYS - set(row))
        assert isinstance(row["clips_per_s"], float) and row["clips_per_s"] > 0, row
    keys = {(r["model"], r["impl"], r["backend"], r["dtype"], r["mode"], r["batch_size"]) for r in rows}
    for model, ref in (("videomae", "transformers"), ("vit", "timm")):
        for mode, batch in (("inference", 1), ("inference", 4), ("train", 2)):
            assert (model, ref, "torch", "float32", mode, batch) in keys
            assert (model, "keras_har", backend, "float32", mode, batch) in keys
            assert (model, "keras_har", backend, "mixed_bfloat16", mode, batch) in keys
    # The pre-training step: keras-har's VideoMAEPretrainer beside transformers' VideoMAEForPreTraining
    # (float32 and autocast; not the bfloat16 cast, which does not train), VideoMAE only.
    pretrain = {k for k in keys if k[4] == "pretrain"}
    assert pretrain == {("videomae", "keras_har", backend, "float32", "pretrain", 2),
                        ("videomae", "keras_har", backend, "mixed_bfloat16", "pretrain", 2),
                        ("videomae", "transformers", "torch", "float32", "pretrain", 2),
                        ("videomae", "transformers", "torch", "mixed_bfloat16", "pretrain", 2)}
    by_key = {(r["impl"], r["backend"], r["dtype"], r["mode"]): r for r in rows if r["model"] == "videomae"}
    for impl, b, dtype, _ in [k for k in by_key if k[3] == "pretrain"]:
        pre, fine = by_key[impl, b, dtype, "pretrain"], by_key[impl, b, dtype, "train"]
        # Its FLOPs are its own (the encoder sees 1 token in 8 here), not 3x the classifier's forward.
        assert fine["gflop_per_clip_step"] == pytest.approx(3 * fine["gflop_per_clip_forward"])
        assert 0 < pre["gflop_per_clip_step"] < fine["gflop_per_clip_step"]
    speedups = {(s["impl"], s["backend"], s["dtype"]): s for s in report["pretrain_speedups"]}
    assert set(speedups) == {(impl, b, dtype) for impl, b, dtype, mode in by_key if mode == "pretrain"}
    for (impl, b, dtype), s in speedups.items():
        pre, fine = by_key[impl, b, dtype, "pretrain"], by_key[impl, b, dtype, "train"]
        assert abs(s["speedup"] - fine["step_time_s"] / pre["step_time_s"]) < 1e-9 * s["speedup"]
    assert "Pre-training step vs fine-tuning step" in proc.stdout
    refs = [r for r in rows if r["impl"] in ("transformers", "timm") and r["dtype"] == "float32"]
    assert all(abs(r["ratio_vs_reference"] - 1.0) < 1e-9 for r in refs)
    assert all(r["ratio_vs_reference"] > 0 for r in rows)
    # A progress line per row as it is measured, so a long run is not silent.
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == len(rows), proc.stderr[-3000:]
    assert progress[-1].startswith(f"[{len(rows)}/{len(rows)} ")
    # --report prints the saved run's table again without measuring anything.
    again = subprocess.run([sys.executable, str(SCRIPT), "--report", str(out)], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0, again.stderr[-3000:]
    table = [line for line in again.stdout.splitlines() if line.startswith(("| videomae ", "| vit "))]
    assert len(table) == len(rows) and not again.stderr.startswith("[")
    assert table == [line for line in proc.stdout.splitlines() if line.startswith(("| videomae ", "| vit "))]
    assert "Pre-training step vs fine-tuning step" in again.stdout


def test_report_of_a_bad_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "not_a_report.json"
    bad.write_text('{"rows": []}')
    proc = subprocess.run([sys.executable, str(SCRIPT), "--report", str(bad)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "not_a_report.json" in proc.stderr and "Traceback" not in proc.stderr


def test_matmul_peak_is_the_best_reading_per_framework_and_dtype():
    report = load_speed_module("report")

    def row(impl, backend, variant, dtype, worker_peak, gflops):
        return dict(model="vit", impl=impl, backend=backend, variant=variant, dtype=dtype, device="cpu",
                    matmul_peak_gflops=worker_peak, achieved_gflops=gflops)

    rows = report.pool_matmul_peaks([
        row("timm", "torch", "eager", "float32", 103.0, 166.0),            # a low reading in a busy worker
        row("keras_har", "torch", "eager", "float32", 187.0, 119.0),
        row("keras_har", "torch", "eager", "mixed_bfloat16", 423.0, 282.0),  # bf16: its own peak
        row("timm", "torch", "eager", "bfloat16", 213.0, 297.0),
        row("keras_har", "tensorflow", "graph", "float32", 215.0, 152.0),   # oneDNN: not XLA's peak
        row("keras_har", "tensorflow", "xla", "float32", 169.0, 145.0),
        row("keras_har", "jax", "xla", "float32", 202.0, 128.0),
    ])
    peaks = [r["matmul_peak_gflops"] for r in rows]
    assert peaks == [187.0, 187.0, 423.0, 423.0, 215.0, 169.0, 202.0]
    assert [r["matmul_peak_worker_gflops"] for r in rows][:2] == [103.0, 187.0]
    for r in rows:
        assert abs(r["peak_fraction"] - r["achieved_gflops"] / r["matmul_peak_gflops"]) < 1e-12
        assert r["peak_fraction"] <= 1.0


def test_targets_read_the_right_rows():
    report, configs = load_speed_module("report"), load_speed_module("configs")

    def row(impl, backend, dtype, mode, batch, clips, variant=None):
        variant = variant or ("eager" if impl != "keras_har" else configs.DEFAULT_VARIANT[backend])
        return dict(model="videomae", impl=impl, backend=backend, variant=variant, dtype=dtype, mode=mode,
                    batch_size=batch, clips_per_s=clips)

    rows = [
        row("transformers", "torch", "float32", "inference", 1, 1.0),
        row("transformers", "torch", "bfloat16", "inference", 1, 1.5),
        row("transformers", "torch", "mixed_bfloat16", "inference", 1, 1.4),
        row("keras_har", "jax", "float32", "inference", 1, 1.2),
        row("keras_har", "torch", "mixed_bfloat16", "inference", 1, 2.1),
        row("keras_har", "torch", "float32", "inference", 1, 0.9),
        row("transformers", "torch", "float32", "train", 2, 0.1),
        row("keras_har", "jax", "float32", "train", 2, 0.14),
        row("keras_har", "torch", "float32", "train", 2, 0.2, variant="compile"),  # not the eager row
    ]
    by_name = {t["target"]: t for t in report.check_targets(rows)}
    fast = by_name["inference b1: fastest keras_har >= 2.0x transformers float32"]
    assert fast["value"] == 2.1 and fast["met"] and fast["ours"] == "torch/eager mixed_bfloat16"
    best = by_name["inference b1: fastest keras_har >= 1.0x the best transformers setting"]
    assert abs(best["value"] - 1.4) < 1e-9 and best["met"] and best["reference"] == "transformers bfloat16"
    train = by_name["train b2: jax float32 >= 1.3x transformers float32"]
    assert abs(train["value"] - 1.4) < 1e-9 and train["met"]
    torch32 = by_name["torch backend inference b1 float32: within 1.15x of transformers (>= 1/1.15)"]
    assert abs(torch32["value"] - 0.9) < 1e-9 and torch32["met"]
    torch_bf16 = by_name["torch backend inference b1 mixed_bfloat16: within 1.15x of transformers (>= 1/1.15)"]
    assert abs(torch_bf16["value"] - 1.5) < 1e-9
    torch_train = by_name["torch backend train b2 float32: within 1.15x of transformers (>= 1/1.15)"]
    assert torch_train["value"] is None and torch_train["met"] is None  # only a compile row: not measured
    assert by_name["inference b4: fastest keras_har >= 2.0x transformers float32"]["met"] is None
    assert "| **no** |" not in report.targets_markdown(report.check_targets(rows)[:2])


def test_pretrain_targets_compare_the_same_setting():
    """The pre-training targets: keras-har's fastest pre-training step against
    transformers' best, and each keras-har setting's pre-training step against
    the fine-tuning step of the same backend, variant and dtype; a default run
    (no pre-training rows) has no pre-training targets."""
    report = load_speed_module("report")

    def row(impl, backend, variant, dtype, mode, step_s):
        return dict(model="videomae", impl=impl, backend=backend, variant=variant, dtype=dtype, mode=mode,
                    batch_size=2, clips_per_s=2 / step_s, step_time_s=step_s)

    rows = [
        row("transformers", "torch", "eager", "float32", "train", 16.0),
        row("transformers", "torch", "eager", "float32", "pretrain", 4.0),
        row("transformers", "torch", "eager", "mixed_bfloat16", "train", 9.0),
        row("transformers", "torch", "eager", "mixed_bfloat16", "pretrain", 3.0),
        row("keras_har", "jax", "xla", "float32", "train", 24.0),
        row("keras_har", "jax", "xla", "float32", "pretrain", 4.0),
        row("keras_har", "torch", "eager", "mixed_bfloat16", "train", 8.0),
        row("keras_har", "torch", "eager", "mixed_bfloat16", "pretrain", 2.5),
        row("keras_har", "tensorflow", "graph", "float32", "pretrain", 5.0),  # no train row of its own
        row("keras_har", "tensorflow", "xla", "float32", "train", 15.0),
    ]
    by_name = {t["target"]: t for t in report.check_targets(rows)}
    best = by_name["pretrain b2: fastest keras_har >= 1.0x the best transformers setting"]
    assert abs(best["value"] - 3.0 / 2.5) < 1e-9 and best["met"]
    assert (best["ours"], best["reference"]) == ("torch/eager mixed_bfloat16", "transformers mixed_bfloat16")
    jax32 = by_name["pretrain b2 jax/xla float32: >= 4.0x a fine-tuning step (train b2), same setting"]
    assert abs(jax32["value"] - 6.0) < 1e-9 and jax32["met"] and jax32["reference"] == "jax/xla float32 train"
    torch_bf16 = by_name["pretrain b2 torch/eager mixed_bfloat16: >= 4.0x a fine-tuning step (train b2), same setting"]
    assert abs(torch_bf16["value"] - 3.2) < 1e-9 and torch_bf16["met"] is False
    graph = by_name["pretrain b2 tensorflow/graph float32: >= 4.0x a fine-tuning step (train b2), same setting"]
    assert graph["value"] is None and graph["met"] is None  # the tensorflow xla train row is another setting
    speedups = {s["setting"]: s["speedup"] for s in report.pretrain_speedups(rows)}
    assert speedups == pytest.approx({"transformers float32": 4.0, "transformers mixed_bfloat16": 3.0,
                                      "jax/xla float32": 6.0, "torch/eager mixed_bfloat16": 3.2})
    default_run = [r for r in rows if r["mode"] != "pretrain"]
    assert not any("pretrain" in t["target"] for t in report.check_targets(default_run))
    assert report.pretrain_speedups(default_run) == []


def test_einsum_attention_experiment_swaps_the_op_videomae_calls(monkeypatch):
    """The `+einsum_attention` variant swaps keras.ops.dot_product_attention
    (no copy of the model's attention): VideoMAE's layers go through the
    einsum form, and it gives what Keras' fused op gives."""
    import numpy as np

    from keras_har.models import VideoMAEBackbone

    keras_models = load_speed_module("keras_models")
    monkeypatch.setattr(keras.ops, "dot_product_attention", keras.ops.dot_product_attention)  # put back after
    backbone = VideoMAEBackbone(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_dim=32,
                                num_layers=2, num_heads=2, mlp_dim=64)
    clips = np.random.default_rng(0).standard_normal((2, 4, 32, 32, 3)).astype("float32")
    fused_out = keras.ops.convert_to_numpy(backbone(clips))

    fused = keras_models.use_einsum_attention()
    einsum_attention = keras.ops.dot_product_attention
    assert einsum_attention is not fused
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return einsum_attention(*args, **kwargs)

    monkeypatch.setattr(keras.ops, "dot_product_attention", counted)
    out = keras.ops.convert_to_numpy(backbone(clips))
    assert len(calls) == 2 and tuple(calls[0]) == (2, 32, 2, 16)  # (batch, tokens, heads, head_dim) per layer
    assert np.abs(fused_out).max() > 0.1
    np.testing.assert_allclose(out, fused_out, rtol=1e-5, atol=1e-5)

"""The exported-runtime rows of benchmarks/backend_speed.py (--quick, a tiny
VideoMAE): every installed runtime timed in the same run as the Keras rows and
transformers, the float32 exports agreeing with each other, the bf16 / int8
cost measured against float32, and the issue's target read from these rows.
The speeds themselves are not asserted (a benchmark, not a timed test). It
runs in the tensorflow leg of the suite only (TensorFlow makes the exports)."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "backend_speed.py"


@pytest.mark.slow
def test_backend_speed_exported_rows_quick(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("runs once, in the tensorflow leg (the benchmark exports from TensorFlow)")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    pytest.importorskip("ai_edge_litert")
    out, exports = tmp_path / "speed.json", tmp_path / "exports"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--backends", "tensorflow", "--models", "videomae",
         "--modes", "inference1,inference4", "--dtypes", "float32,bfloat16,int8", "--repeats", "1", "--budget", "0.05", "--accuracy-clips", "16",
         "--export-dir", str(exports), "--json", str(out)],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    for row in rows:
        assert row["clips_per_s"] > 0, row
    exported = {(r["variant"], r["dtype"], r["batch_size"]): r for r in rows if r["impl"] == "exported"}
    expected = {("onnxruntime", "float32"), ("onnxruntime", "int8"), ("openvino", "float32"),
                ("openvino", "bfloat16"), ("tf_saved_model", "float32"), ("litert", "float32"),
                ("litert", "int8")}
    assert set(exported) == {key + (b,) for key in expected for b in (1, 4)}
    assert all(r["backend"] == "tensorflow" and r["mode"] == "inference" for r in exported.values())
    # Beside the Keras rows and transformers (its bfloat16 row is the target's reference), same run.
    impls = {(r["impl"], r["dtype"]) for r in rows}
    assert {("keras_har", "float32"), ("transformers", "float32"), ("transformers", "bfloat16")} <= impls
    # The first float32 export is the reference; the other float32 exports agree with it.
    reference = exported[("onnxruntime", "float32", 1)]
    assert reference["accuracy_reference"] and reference["accuracy_clips"] == 16
    for (variant, dtype, _), r in exported.items():
        if r is reference or (variant, dtype) == ("onnxruntime", "float32"):
            continue
        if dtype == "float32":
            assert r["accuracy_clips"] == 8 and r["max_logit_diff"] < 1e-4 and r["top1_agreement"] == 1.0, r
        else:  # bf16 / int8: a measured cost, small but not zero
            assert r["accuracy_clips"] == 16 and 0 < r["max_logit_diff"] < 0.5, r
            assert 0.5 <= r["top1_agreement"] <= 1.0, r
    # Exported files are kept in --export-dir (a second run reuses them).
    assert (exports / "model.onnx").exists() and (exports / "model_litert_int8.tflite").exists()
    # The target reads the exported rows too (quick runs print no target table: check the function).
    sys.path.insert(0, str(SCRIPT.parent))
    from speed import report

    fastest = max((r for r in rows if r["batch_size"] == 1 and r["impl"] in ("keras_har", "exported")),
                  key=lambda r: r["clips_per_s"])
    target = next(t for t in report.check_targets(rows)
                  if t["target"].startswith("inference b1: fastest keras-har path"))
    ref = next(r for r in rows if r["impl"] == "transformers" and r["dtype"] == "bfloat16" and r["batch_size"] == 1)
    assert target["value"] == pytest.approx(fastest["clips_per_s"] / ref["clips_per_s"])
    assert target["met"] == (target["value"] >= 1.3)
    assert "exported" in proc.stdout and "(the reference, 16 clips)" in proc.stdout

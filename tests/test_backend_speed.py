"""`benchmarks/backend_speed.py --quick` runs on the current backend (beside the
PyTorch references) and writes JSON in the documented schema."""

import json
import os
import pathlib
import subprocess
import sys

import keras

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "backend_speed.py"
ROW_KEYS = {"model", "impl", "backend", "dtype", "mode", "batch_size", "clips_per_s", "ratio_vs_reference",
            "achieved_gflops", "peak_fraction", "matmul_peak_gflops", "peak_rss_mb", "compile_time_s",
            "device"}


def test_backend_speed_quick_writes_json(tmp_path):
    backend = keras.backend.backend()
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--backends", backend, "--repeats", "2"],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"cpu", "cpu_count", "load_average_before"} <= set(report["machine"])
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
    refs = [r for r in rows if r["impl"] in ("transformers", "timm") and r["dtype"] == "float32"]
    assert all(abs(r["ratio_vs_reference"] - 1.0) < 1e-9 for r in refs)
    assert all(r["ratio_vs_reference"] > 0 for r in rows)

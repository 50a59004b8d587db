"""benchmarks/export_speed.py --quick runs end to end (a tiny model): every
exported runtime and transformers timed in one run, float32 exports agreeing
with each other, the reduced precisions' cost measured, the target checked.
The speeds themselves are not asserted (a benchmark, not a timed test). It runs
in the tensorflow leg of the suite only (the script exports from TensorFlow)."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "export_speed.py"


@pytest.mark.slow
def test_export_speed_quick(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("runs once, in the tensorflow leg (the benchmark exports from TensorFlow)")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    pytest.importorskip("ai_edge_litert")
    out = tmp_path / "speed.json"
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--batches", "1", "2",
                           "--budget", "0.05", "--accuracy-clips", "8", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    names = [r["name"] for r in result["rows"]]
    assert names[-2:] == ["transformers float32", "transformers bfloat16 (model cast)"]
    assert {"onnxruntime float32", "openvino float32", "tensorflow saved_model float32",
            "litert float32"} <= set(names)
    for row in result["rows"]:
        assert row["clips_per_s_b1"] > 0 and row["clips_per_s_b2"] > 0
        if "float32" in row["name"] and not row["name"].startswith("transformers"):
            assert row["max_logit_diff"] < 1e-4 and row["top1_agreement"] == 1.0, row
        elif "max_logit_diff" in row:  # bf16 / int8: a measured, small cost
            assert 0 <= row["max_logit_diff"] < 0.5, row
    assert set(result["targets"]) == {"b1", "b2"}
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())
    assert result["machine"]["cpu"] and result["machine"]["load_before"] is not None
    assert "target b1:" in proc.stdout and "load average" in proc.stdout

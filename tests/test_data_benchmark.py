"""`benchmarks/loader_speed.py --quick` runs and writes valid JSON."""

import json
import os
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "loader_speed.py"


def test_loader_speed_quick_writes_json(tmp_path):
    out = tmp_path / "speed.json"
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], check=True,
                   timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                   capture_output=True)
    results = json.loads(out.read_text())["results"]
    assert {(r["pipeline"], r["workers"]) for r in results} == {
        ("grain", 1), ("grain", 2), ("tf", 1), ("tf", 2), ("naive_pil", 0)}
    assert all(isinstance(r["clips_per_s"], float) and r["clips_per_s"] > 0 for r in results)

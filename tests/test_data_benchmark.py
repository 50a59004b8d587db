"""`benchmarks/loader_speed.py --quick` runs and writes valid JSON; `--data-root`
indexes a user's own videos."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import write_video

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "loader_speed.py"


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="the loaders import no Keras: the benchmark runs once, under jax")
def test_loader_speed_quick_writes_json(tmp_path):
    out = tmp_path / "speed.json"
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], check=True,
                   timeout=240, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                   capture_output=True)
    report = json.loads(out.read_text())
    results = report["results"]
    assert {(r["pipeline"], r["decoder"], r["workers"]) for r in results} == {
        ("grain", "pyav", 1), ("grain", "pyav", 2), ("grain", "opencv", 1), ("grain", "opencv", 2),
        ("tf", "pyav", 1), ("tf", "pyav", 2), ("naive_pil", "opencv", 0)}
    assert all(isinstance(r["clips_per_s"], float) and r["clips_per_s"] > 0 for r in results)
    assert report["machine"]["cpu"] and len(report["machine"]["load_average"]) == 3
    assert set(report["decode_cpu_ms_per_clip"]) == {"pyav", "opencv"}
    assert all(ms > 0 for ms in report["decode_cpu_ms_per_clip"].values())


def test_data_root_indexes_every_video_by_folder(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import loader_speed

    frames = np.zeros((4, 16, 16, 3), np.uint8)
    for rel in ("walk/a.avi", "walk/deep/b.avi", "run/c.avi"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write_video(tmp_path / rel, frames)
    (tmp_path / "run" / "notes.txt").write_text("not a video")
    index = loader_speed.video_index(tmp_path)
    assert index.class_names == ["deep", "run", "walk"]
    assert sorted((pathlib.Path(p).relative_to(tmp_path).as_posix(), label) for p, label in index.items) == [
        ("run/c.avi", 1), ("walk/a.avi", 2), ("walk/deep/b.avi", 0)]

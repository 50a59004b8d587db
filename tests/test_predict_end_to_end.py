"""benchmarks/predict_end_to_end.py --quick: `keras-har predict` (1 and 6
views, under the current backend) and transformers' video-classification
pipeline on the same generated XviD videos and the same Hugging Face checkpoint
directory, with the per-part breakdown and the target check. The speeds are
not asserted (a benchmark, not a timed test)."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "predict_end_to_end.py"


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="a benchmark: timed once, under jax (keras-har predict is tested per backend in test_cli)")
def test_predict_end_to_end_quick(tmp_path):
    pytest.importorskip("av")  # transformers' pipeline requires PyAV
    backend = keras.backend.backend()
    out = tmp_path / "e2e.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--num-videos", "2", "--work-dir", str(tmp_path / "work"),
         "--keras-har", backend, "--views", "single,tta", "--json", str(out)],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())

    # The inputs: HMDB51-like XviD AVI files and a Hugging Face checkpoint directory.
    import av

    videos = sorted((tmp_path / "work" / "videos").glob("*.avi"))
    assert len(videos) == 2 and result["videos"] == 2
    for path in videos:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("mpeg4", 320, 240)
            assert stream.codec_context.codec_tag.upper() == "XVID"
            assert 0.9 <= float(stream.duration * stream.time_base) <= 1.6
    checkpoint = tmp_path / "work" / "checkpoint_tiny"
    labels = set(json.loads((checkpoint / "config.json").read_text())["id2label"].values())
    assert (checkpoint / "preprocessor_config.json").exists() and len(labels) == 51

    rows = {(r["name"].split()[0] + (" bf16" if "bfloat16" in r["name"] else ""), r["views"]): r
            for r in result["rows"]}
    assert set(rows) == {("transformers", "single"), ("transformers bf16", "single"), ("keras-har", "single"),
                         ("keras-har", "tta")}
    assert rows[("keras-har", "single")]["num_views"] == 1 and rows[("keras-har", "tta")]["num_views"] == 6
    for r in rows.values():
        assert r["videos"] == 2 and r["videos_per_s"] > 0
        assert len(r["top1"]) == 2 and set(r["top1"]) <= labels  # labels from the checkpoint's config
        parts = r["decode_s"] + r["preprocess_s"] + r["model_s"]
        assert r["decode_s"] > 0 and r["preprocess_s"] >= 0 and r["model_s"] > 0
        assert parts <= r["wall_s"] - r["load_s"] + 1e-6, r
    assert backend in rows[("keras-har", "single")]["framework"]
    assert rows[("transformers", "single")]["decoder"]  # which decoder the pipeline used is reported
    assert "bfloat16" in rows[("transformers bf16", "single")]["dtype_used"]

    ratio = rows[("keras-har", "single")]["videos_per_s"] / rows[("transformers", "single")]["videos_per_s"]
    target = result["targets"]["single"]
    assert target["ratio"] == pytest.approx(ratio) and target["met"] == (ratio >= 1.5)
    assert result["machine"]["cpu"] and f"on CPU: {result['machine']['cpu']}" in proc.stdout
    assert "target (1 view)" in proc.stdout

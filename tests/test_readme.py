"""README.md's Python snippets run as a user runs them, and every relative
link of README.md and docs/ resolves to a file (and heading) in the repository.

The snippets run as scripts in a fresh process (the fine-tuning one starts
grain worker processes, which import the script again), in a directory with
the files they name (`video.mp4`, `clips/train|val/<class>/`). What is
substituted is the preset, which would be downloaded: a tiny VideoMAE written
by `save_to_preset` takes its place, and the clip size, batch and epochs the
snippets give for the real preset become the tiny one's (`SUBSTITUTIONS`), so
that the test is short.
"""

import io
import json
import os
import pathlib
import re
import subprocess
import sys
from contextlib import redirect_stdout

import cv2
import numpy as np
import pytest
from conftest import moving_square_frames, write_video

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOWNLOADED = '"videomae_base_kinetics"'  # the preset name the snippets use
# The real preset's clip size and batch -> the tiny preset's (4 frames of 32 px); one epoch.
SUBSTITUTIONS = {"num_frames=16": "num_frames=4", "image_size=224": "image_size=32", "batch_size=8": "batch_size=4",
                 "epochs=3": "epochs=1"}
LABELS = [f"action_{i}" for i in range(6)]


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def markdown_files():
    return [README] + sorted((ROOT / "docs").rglob("*.md"))


def heading_anchors(text):
    """GitHub's anchors of a markdown file's headings."""
    anchors = set()
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def relative_links(text):
    """Targets of the markdown links and images that are not URLs."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # code blocks hold no links
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A VideoMAE classifier of 4 frames of 32 px and one tiny block."""
    from keras_har.models import VideoMAEBackbone, VideoMAEClassifier

    backbone = VideoMAEBackbone(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_dim=16,
                                num_layers=1, num_heads=2, mlp_dim=32)
    path = tmp_path_factory.mktemp("preset") / "tiny_videomae"
    VideoMAEClassifier(backbone, labels=LABELS).save_to_preset(str(path))
    return path


def write_mp4(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, frames.shape[2:0:-1])
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def run_snippet(code, cwd, preset):
    assert DOWNLOADED in code, "the snippet no longer names the preset this test replaces"
    script = cwd / "snippet.py"
    code = code.replace(DOWNLOADED, repr(str(preset)))
    for real, tiny in SUBSTITUTIONS.items():
        code = code.replace(real, tiny)
    script.write_text(code)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_readme_is_short_and_self_contained():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert "SEED.md" not in text and "shared/" not in text
    assert len(python_blocks(text)) == 2


def test_label_a_video_snippet(tmp_path, tiny_preset):
    from keras_har import cli

    write_mp4(tmp_path / "video.mp4", moving_square_frames(num_frames=40, height=120, width=160))
    out = run_snippet(python_blocks(README.read_text())[0], tmp_path, tiny_preset)
    printed = [line.split() for line in out.splitlines() if re.fullmatch(r"\s*[\d.]+%\s+\S+", line)]
    assert len(printed) == 5
    # The oracle: `keras-har predict` on the same file and preset (the command's own decoding path).
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert cli.main(["predict", str(tmp_path / "video.mp4"), "--preset", str(tiny_preset), "--top-k", "5",
                         "--json"]) in (0, None)
    top = json.loads(buffer.getvalue())[0]["top"]
    assert [label for _, label in printed] == [t["label"] for t in top]
    np.testing.assert_allclose([float(p.rstrip("%")) / 100 for p, _ in printed],
                               [t["probability"] for t in top], atol=1e-4)


def test_fine_tune_snippet(tmp_path, tiny_preset):
    from keras_har.models import VideoMAEClassifier

    classes = ["left_to_right", "right_to_left"]
    for subset, count in (("train", 4), ("val", 2)):
        for label, name in enumerate(classes):
            folder = tmp_path / "clips" / subset / name
            folder.mkdir(parents=True)
            for i in range(count):
                frames = moving_square_frames(num_frames=36, seed=i, reverse=bool(label))
                write_video(folder / f"{name}_{i}.avi", frames)
    out = run_snippet(python_blocks(README.read_text())[1], tmp_path, tiny_preset)
    model = VideoMAEClassifier.from_preset(str(tmp_path / "my_model"))
    assert model.class_names == classes
    assert "val_top1" in out  # fit trained and validated, with compile()'s default metrics


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    text = path.read_text()
    for target in relative_links(text):
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        assert resolved.exists(), f"{path.relative_to(ROOT)}: {target} does not exist"
        assert ROOT in resolved.parents or resolved == ROOT, f"{path.relative_to(ROOT)}: {target} leaves the repository"
        if anchor and resolved.suffix == ".md":
            assert anchor in heading_anchors(resolved.read_text()), f"{path.relative_to(ROOT)}: no heading #{anchor}"

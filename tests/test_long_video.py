"""Long videos: `keras-har predict --window SECONDS --stride SECONDS`.

The oracle is the video itself: two classes of the synthetic dataset
(`still_cross`, then `grow`: short renders of each, one after the other)
in one file, and a tiny VideoMAE trained in the test (a few seconds) to tell them
apart. Every window wholly before the change must get the first class, every
window wholly after it the second: the label switches within one window.
"""

import csv
import json

import keras
import numpy as np
import pytest

from keras_har import cli, long_video
from keras_har.data import clip_transforms, normalization, synthetic_videos
from keras_har.models import VideoMAEBackbone, VideoMAEClassifier

CLASSES = ["still_cross", "grow"]
NUM_FRAMES, SAMPLING_RATE, IMAGE_SIZE, FPS = 4, 2, 32, 12.0
HALF_SECONDS = 8.0


def renders(cls, rng, count):
    """`count` samples of `cls` of one clip span each, `(count * span, 64, 64, 3)`."""
    return np.concatenate([synthetic_videos.render(cls, rng, num_frames=NUM_FRAMES * SAMPLING_RATE,
                                                   size=64) for _ in range(count)])


def training_clips(rng, per_class):
    """Clips as the window labelling sees them: 64 px frames, short edge
    resized, centre crop, normalised; labels 0/1."""
    x, y = [], []
    for label, cls in enumerate(CLASSES):
        for _ in range(per_class):
            frames = synthetic_videos.render(cls, rng, num_frames=NUM_FRAMES * SAMPLING_RATE, size=64)
            clip = clip_transforms.center_clip(frames[::SAMPLING_RATE], IMAGE_SIZE)
            x.append(normalization.normalize(clip, normalization.IMAGENET_MEAN, normalization.IMAGENET_STD))
            y.append(label)
    return np.stack(x), np.array(y)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run directory whose tiny VideoMAE tells the two classes apart (held-out
    accuracy checked), and a video: 8 s of one class, then 8 s of the other."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    backbone = VideoMAEBackbone(image_size=IMAGE_SIZE, patch_size=8, num_frames=NUM_FRAMES,
                                tubelet_size=2, hidden_dim=32, num_layers=1, num_heads=4,
                                mlp_dim=64)
    model = VideoMAEClassifier(backbone, labels=CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x, y = training_clips(rng, 48)  # ~10 s of training
    model.fit(x, y, batch_size=16, epochs=12, verbose=0)
    x_val, y_val = training_clips(rng, 16)
    accuracy = (model.predict(x_val, verbose=0).argmax(1) == y_val).mean()
    assert accuracy >= 0.9, f"the tiny model did not learn the two classes ({accuracy:.2f})"

    root = tmp_path_factory.mktemp("long_video")
    run = root / "run"
    run.mkdir()
    model.save_to_preset(str(run / "model"))
    (run / "config.json").write_text(json.dumps(
        {"num_frames": NUM_FRAMES, "sampling_rate": SAMPLING_RATE, "image_size": IMAGE_SIZE}))
    half = int(HALF_SECONDS * FPS) // (NUM_FRAMES * SAMPLING_RATE)
    frames = np.concatenate([renders(cls, rng, half) for cls in CLASSES])
    video = root / "cross_then_disc.avi"
    synthetic_videos.write_video(video, frames, fps=FPS)
    return run, video


def test_window_bounds():
    assert long_video.window_bounds(10.0, 4.0, 2.0) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    # The last window ends at the end of the video.
    assert long_video.window_bounds(9.0, 4.0, 3.0) == [(0, 4), (3, 7), (5, 9)]
    assert long_video.window_bounds(1.5, 4.0, 1.0) == [(0, 1.5)]  # shorter than a window
    with pytest.raises(ValueError, match="positive"):
        long_video.window_bounds(10.0, 0.0, 1.0)


@pytest.mark.parametrize("views", ["single", "tta"])
def test_label_switches_within_one_window_of_the_change(trained_run, tmp_path, capsys, views):
    run, video = trained_run
    out = tmp_path / "windows.csv"
    window, stride = 2.0, 1.0
    code = cli.main(["predict", str(video), "--run-dir", str(run), "--window", str(window),
                     "--stride", str(stride), "--views", views, "--top-k", "2",
                     "--output", str(out), "--timeline"])
    assert code == 0, capsys.readouterr().err
    with open(out) as f:
        rows = list(csv.DictReader(f))
    top1 = [(float(r["start"]), float(r["end"]), r["label"]) for r in rows if r["rank"] == "1"]
    assert len(top1) == len(long_video.window_bounds(2 * HALF_SECONDS, window, stride)) == 15
    assert {r["video"] for r in rows} == {str(video)}
    assert len(rows) == 2 * len(top1)  # top-2 per window
    for start, end, label in top1:
        if end <= HALF_SECONDS:
            assert label == CLASSES[0], (start, end, label)
        elif start >= HALF_SECONDS:
            assert label == CLASSES[1], (start, end, label)
    timeline = tmp_path / "timeline.png"
    assert timeline.stat().st_size > 10_000 and timeline.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_windows_as_json_on_stdout(trained_run, capsys):
    run, video = trained_run
    capsys.readouterr()
    assert cli.main(["predict", str(video), "--run-dir", str(run), "--window", "4", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["video"] == str(video) and result["window"] == 4 and result["stride"] == 4
    assert abs(result["duration"] - 2 * HALF_SECONDS) < 0.2
    starts = [w["start"] for w in result["windows"]]
    assert starts == [0, 4, 8, 12]
    labels = [w["top"][0]["label"] for w in result["windows"]]
    assert labels == [CLASSES[0]] * 2 + [CLASSES[1]] * 2
    for w in result["windows"]:
        probs = [t["probability"] for t in w["top"]]
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-6

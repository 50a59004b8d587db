"""The synthetic dataset: HMDB51 layout, determinism, and time-reversed pairs."""

import numpy as np
import pytest

from keras_har.data import HMDB51, REVERSAL_PAIRS, ensure_synthetic_dataset, read_frames
from keras_har.data import make_synthetic_dataset as make


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return make(root, train_per_class=24, test_per_class=4, num_frames=12, image_size=32, seed=3)


def frame_stats(path):
    """Per decoded frame: mean brightness and the x / y centroids of bright pixels."""
    frames = read_frames(str(path), np.arange(12)).astype(np.float32).mean(-1)
    bright = frames > 80
    y, x = np.mgrid[: frames.shape[1], : frames.shape[2]]
    weight = np.maximum(bright.sum((1, 2)), 1)
    return np.stack([frames.mean((1, 2)), (bright * x).sum((1, 2)) / weight,
                     (bright * y).sum((1, 2)) / weight], axis=1)  # (T, 3)


def test_layout_read_by_hmdb51(dataset):
    videos, splits = dataset
    train, test = HMDB51(videos, splits, subset="train"), HMDB51(videos, splits, subset="test")
    assert len(train.class_names) == 6 and len(train) == 6 * 24 and len(test) == 6 * 4
    for k in (2, 3):
        assert len(HMDB51(videos, splits, split=k, subset="test")) == 6 * 4


def test_deterministic_for_a_seed(tmp_path):
    a = make(tmp_path / "a", train_per_class=1, test_per_class=1, num_frames=6, image_size=32, seed=1)
    b = make(tmp_path / "b", train_per_class=1, test_per_class=1, num_frames=6, image_size=32, seed=1)
    files = sorted(p.relative_to(a[0]) for p in a[0].rglob("*.avi"))
    assert len(files) == 12
    assert all((a[0] / f).read_bytes() == (b[0] / f).read_bytes() for f in files)
    assert ensure_synthetic_dataset(tmp_path / "a", train_per_class=1, test_per_class=1,
                                    num_frames=6, image_size=32, seed=1) == a


@pytest.mark.parametrize("pair", REVERSAL_PAIRS)
def test_reversal_pairs_match_per_frame_but_not_in_order(dataset, pair):
    """Pooled over frames the two classes look alike (a frame-order-blind model
    is at chance); the trend over time is opposite."""
    videos, _ = dataset
    stats = {c: np.stack([frame_stats(p) for p in sorted((videos / c).glob("*.avi"))]) for c in pair}
    a, b = stats[pair[0]], stats[pair[1]]  # (videos, T, 3)
    for k in range(3):
        pooled_a, pooled_b = a[..., k].mean(1), b[..., k].mean(1)  # per video, order-free
        scale = np.sqrt((pooled_a.var() + pooled_b.var()) / len(pooled_a)) + 1e-3
        assert abs(pooled_a.mean() - pooled_b.mean()) < 3.5 * scale, (pair, k)
    # the order tells them apart: the statistic that moves runs the other way
    k = int(np.argmax(np.abs((a[:, -1] - a[:, 0]).mean(0))))  # size, x or y
    trend_a = np.sign(a[:, -1, k] - a[:, 0, k]).mean()
    trend_b = np.sign(b[:, -1, k] - b[:, 0, k]).mean()
    assert trend_a * trend_b < 0 and abs(trend_a) > 0.8 and abs(trend_b) > 0.8
    # and reversed videos of one class look like its partner's, frame by frame
    se = np.sqrt((a[..., k].var(0) + b[..., k].var(0)) / len(a))
    assert np.all(np.abs(a[:, ::-1, k].mean(0) - b[:, :, k].mean(0)) < 3.5 * se + 0.5)

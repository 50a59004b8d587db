"""Clip-consistent training transforms, evaluation crops and the test views."""

import numpy as np
import pytest
from conftest import write_video

from keras_har.data import HMDB51, eval_views, make_loader
from keras_har.data import clip_transforms as ct
from keras_har.data import normalization


def pattern_clip(num_frames=6, height=48, width=64, seed=0):
    """One textured image plus a different flat brightness offset per frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, size=(height, width, 3)).astype(np.int32)
    offsets = np.arange(num_frames) * 9
    return (base[None] + offsets[:, None, None, None]).astype(np.uint8), offsets


def coordinate_frame(height, width):
    """R = x, G = y: every pixel tells where it came from."""
    y, x = np.mgrid[:height, :width]
    return np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)


def offset_residual(clip, offsets):
    """Largest deviation of frame t from frame 0 + (offset t - offset 0)."""
    diff = clip.astype(np.int32) - clip[:1].astype(np.int32)
    return np.abs(diff - (offsets - offsets[0])[:, None, None, None]).max()


def test_short_side_scales_with_image_size():
    assert ct.short_side(224) == 256
    assert ct.short_side(32) == 37


def test_random_resized_crop_box_ranges():
    rng = np.random.default_rng(0)
    for _ in range(200):
        y, x, h, w = ct.random_resized_crop_box(120, 160, rng)
        assert 0 <= y and y + h <= 120 and 0 <= x and x + w <= 160
        assert 0.8 * 0.97 <= h * w / (120 * 160) <= 1.0
        assert 3 / 4 * 0.95 <= w / h <= 4 / 3 * 1.05


def test_train_clip_same_crop_and_flip_on_every_frame():
    frames, offsets = pattern_clip()
    for seed in range(8):
        out = ct.train_clip(frames, 32, np.random.default_rng(seed))
        assert out.shape == (6, 32, 32, 3) and out.dtype == np.uint8
        assert offset_residual(out, offsets) <= 1  # resize is linear: only rounding
        np.testing.assert_array_equal(out, ct.train_clip(frames, 32, np.random.default_rng(seed)))
    # flips happen about half the time: x (the R channel) then runs right to left
    coords = np.repeat(coordinate_frame(48, 64)[None], 2, axis=0)
    flipped = [ct.train_clip(coords, 32, np.random.default_rng(s))[:, 0, :, 0].astype(int)
               for s in range(40)]
    directions = [np.sign(np.diff(f, axis=1)).mean() for f in flipped]
    assert all(abs(d) > 0.9 for d in directions)
    assert 10 <= sum(d < 0 for d in directions) <= 30


def test_per_frame_mode_crops_each_frame_differently():
    frames, offsets = pattern_clip()
    out = ct.per_frame_random_crops(frames, 32, np.random.default_rng(0))
    assert out.shape == (6, 32, 32, 3)
    assert offset_residual(out, offsets) > 40


@pytest.mark.parametrize("height,width", [(48, 64), (64, 48)])
def test_tta6_views_are_the_expected_crops(height, width):
    frames = np.repeat(coordinate_frame(height, width)[None], 2, axis=0)
    views = ct.multi_view_clip(frames, 48, num_views=6)  # short edge 48: crops are exact
    assert views.shape == (6, 2, 48, 48, 3)
    along = 0 if width > height else 1  # R (x) for landscape, G (y) for portrait
    for v, start in enumerate((0, 8, 16)):  # left/top, centre, right/bottom
        expected = np.zeros((2, 48, 48, 3), np.uint8)
        expected[..., along] = np.arange(start, start + 48)[None, :] if along == 0 else (
            np.arange(start, start + 48)[:, None])
        expected[..., 1 - along] = np.arange(48)[:, None] if along == 0 else np.arange(48)[None, :]
        np.testing.assert_array_equal(views[v], expected)
        np.testing.assert_array_equal(views[v + 3], expected[:, :, ::-1])  # flipped twin


def test_center_crop_is_centred():
    frame = coordinate_frame(48, 64)[None]
    out = ct.center_clip(frame, 32)[0]
    # short edge 48 -> 37 (for 32); the centre 32 of 37 is 41.5 px of the
    # original: x in [11.2, 52.8], y in [3.2, 44.8]
    assert out[..., 0].mean() == pytest.approx(31.5, abs=0.6)
    assert out[..., 1].mean() == pytest.approx(23.5, abs=0.6)
    assert out[0, 0, 0] == pytest.approx(11.9, abs=1.5) and out[0, -1, 0] == pytest.approx(52.1, abs=1.5)
    assert out[0, 0, 1] == pytest.approx(3.9, abs=1.5) and out[-1, 0, 1] == pytest.approx(44.1, abs=1.5)


def test_normalize():
    frames = np.array([[[[0, 255, 51]]]], dtype=np.uint8)
    out = normalization.normalize(frames, mean=(0.5, 0.5, 0.2), std=(0.5, 0.25, 0.1))
    np.testing.assert_allclose(out[0, 0, 0], [-1.0, 2.0, 0.0], atol=1e-6)
    assert out.dtype == np.float32
    # A whole clip, flipped (a non-contiguous view), against the formula in numpy.
    clip = np.random.default_rng(0).integers(0, 256, (4, 8, 10, 3), dtype=np.uint8)[:, :, ::-1]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = normalization.normalize(clip, mean, std)
    expected = (clip / 255.0 - np.array(mean)) / np.array(std)
    assert out.shape == clip.shape
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # keras-hub's scale / offset form of the same normalisation, and back.
    scale, offset = normalization.scale_offset(mean, std)
    np.testing.assert_allclose(clip * np.array(scale) + np.array(offset), expected, atol=1e-5)
    np.testing.assert_allclose(normalization.mean_std(scale, offset), (mean, std), rtol=1e-12)


def test_decoded_clip_transform_is_consistent_and_official_views(tmp_path):
    """Through the real decoder and the loader, with MJPG's loss as tolerance."""
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 200, size=(6, 8, 3)), np.ones((8, 8, 1)))  # 48x64, 8px blocks
    offsets = np.arange(20) * 2
    frames = (base[None] + offsets[:, None, None, None]).astype(np.uint8)
    (tmp_path / "v" / "a").mkdir(parents=True)
    (tmp_path / "s").mkdir()
    write_video(tmp_path / "v" / "a" / "x.avi", frames)
    (tmp_path / "s" / "a_test_split1.txt").write_text("x.avi 1\n")
    ds = HMDB51(tmp_path / "v", tmp_path / "s", subset="train")
    for consistent, check in ((True, lambda r: r < 0.05), (False, lambda r: r > 0.3)):
        loader = make_loader(ds, training=True, batch_size=1, num_frames=4, sampling_rate=2,
                             image_size=32, mean=(0, 0, 0), std=(1, 1, 1), workers=0,
                             consistent=consistent, seed=3)
        x = next(iter(loader))[0][0] * 255.0  # (T, 32, 32, 3) back in pixel units
        step = x - x[:1]
        spread = (step - step.mean(axis=(1, 2, 3), keepdims=True)).std() / x.std()
        assert check(spread), (consistent, spread)
    views = eval_views(str(tmp_path / "v" / "a" / "x.avi"), 4, 2, 32, views="official", num_clips=2)
    assert views.shape == (6, 4, 32, 32, 3)

"""Mixup and CutMix on a batch, against timm's batch-mode definitions."""

import numpy as np
import pytest

from keras_har.data import mix_batch, one_hot


def batch(b=4, t=3, h=16, w=20, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, t, h, w, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 4][:b])
    return x, labels, classes


def test_one_hot_with_label_smoothing_like_timm():
    y = one_hot([2, 0], 4, smoothing=0.1)
    np.testing.assert_allclose(y[0], [0.025, 0.025, 0.925, 0.025], atol=1e-7)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-6)


def test_mixup_mixes_sample_i_with_the_flipped_batch():
    x, labels, classes = batch()
    y = one_hot(labels, classes, smoothing=0.1)
    xm, ym, lam, mode = mix_batch(x, y, np.random.default_rng(1), mixup_alpha=0.8)
    assert mode == "mixup" and 0.0 <= lam <= 1.0
    np.testing.assert_allclose(xm, lam * x + (1 - lam) * x[::-1], atol=1e-6)
    np.testing.assert_allclose(ym, lam * y + (1 - lam) * y[::-1], atol=1e-6)
    np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-6)
    assert xm.dtype == np.float32 and ym.dtype == np.float32


def test_mixup_lambda_follows_beta_alpha_alpha():
    x, labels, classes = batch(b=2)
    y = one_hot(labels, classes)
    lams = [mix_batch(x, y, np.random.default_rng(s), mixup_alpha=0.8)[2] for s in range(2000)]
    assert np.mean(lams) == pytest.approx(0.5, abs=0.03)
    assert np.var(lams) == pytest.approx(0.25 / (2 * 0.8 + 1), abs=0.02)  # Beta(a, a) variance


def test_cutmix_box_area_is_one_minus_lambda():
    x, labels, classes = batch()
    y = one_hot(labels, classes)
    for seed in range(20):
        xm, ym, lam, mode = mix_batch(x, y, np.random.default_rng(seed), mixup_alpha=0.0,
                                      cutmix_alpha=1.0)
        assert mode == "cutmix"
        from_partner = np.isclose(xm, x[::-1]) & ~np.isclose(x, x[::-1])
        # the same box on every frame and channel of every sample
        box = from_partner[0, 0, :, :, 0]
        assert np.all(from_partner == box[None, None, :, :, None])
        assert 1.0 - box.mean() == pytest.approx(lam, abs=1e-9)
        np.testing.assert_allclose(ym, lam * y + (1 - lam) * y[::-1], atol=1e-6)
        np.testing.assert_allclose(xm[:, :, ~box], x[:, :, ~box])


def test_switch_prob_and_mix_prob():
    x, labels, classes = batch()
    y = one_hot(labels, classes)
    modes = [mix_batch(x, y, np.random.default_rng(s), 0.8, 1.0, switch_prob=0.5)[3]
             for s in range(400)]
    assert 0.4 < modes.count("cutmix") / len(modes) < 0.6
    assert set(modes) == {"mixup", "cutmix"}
    off = [mix_batch(x, y, np.random.default_rng(s), 0.8, prob=0.0) for s in range(5)]
    assert all(m is None and np.array_equal(xm, x) for xm, _, _, m in off)

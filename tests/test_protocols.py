"""The three test protocols from one decode (against per-protocol decodes and
model calls in numpy), the bootstrap interval (against the binomial law it
estimates), and the hard synthetic profile."""

import json

import keras
import numpy as np
import pytest
from scipy import stats

from keras_har import evaluation
from keras_har.data import HMDB51, decoding, load_video_views, make_loader
from keras_har.data.synthetic_videos import HARD_CLASSES, HARD_PAIRS, make_synthetic_dataset


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def tiny_model(num_classes=6):
    inputs = keras.Input((2, 8, 8, 3))
    outputs = keras.layers.Dense(num_classes)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs)


def test_protocols_from_one_decode_match_each_protocol_alone(tiny_synthetic, monkeypatch):
    dataset = HMDB51(*tiny_synthetic, subset="test")
    model = tiny_model()
    settings = dict(num_frames=2, sampling_rate=3, image_size=8, mean=(0.45,) * 3, std=(0.225,) * 3)
    reads = []
    real_read = decoding.read_clip
    monkeypatch.setattr(decoding, "read_clip", lambda p, c: reads.append(p) or real_read(p, c))
    loader = make_loader(dataset, training=False, batch_size=5, views="all", num_clips=2,
                         with_index=True, workers=0, **settings)
    out = evaluation.evaluate_protocols(model, loader, paths=dataset.paths, num_clips=2,
                                         class_names=dataset.class_names)
    assert sorted(reads) == sorted(dataset.paths)  # one decode per video
    monkeypatch.setattr(decoding, "read_clip", real_read)

    expected = {"single_view": [], "tta": [], "official": []}
    for path, _ in dataset.items:
        def logits(views):
            x = load_video_views(path, views=views, num_clips=2 if views == "official" else 1, **settings)
            x = x[None] if x.ndim == 4 else x
            return keras.ops.convert_to_numpy(model(x)).astype("float64")
        expected["single_view"].append(logits("single")[0])
        expected["tta"].append(logits("tta6").mean(axis=0))  # the reference protocol's: logits averaged
        expected["official"].append(np_softmax(logits("official")).mean(axis=0))  # probabilities
    labels = np.array(dataset.labels)
    for name, rows in expected.items():
        predicted = np.argmax(rows, axis=1)
        assert out[name]["top1"] == pytest.approx(np.mean(predicted == labels)), name
        assert [p["predicted"] for p in out[name]["predictions"]] == [dataset.class_names[i] for i in predicted]
        probs = np.array([[t[1] for t in p["top5"]] for p in out[name]["predictions"]])
        want = np_softmax(np.array(rows)) if name != "official" else np.array(rows)
        np.testing.assert_allclose(probs[:, 0], want.max(axis=1), atol=1e-4)
    json.dumps({k: evaluation.summary(v) for k, v in out.items()})  # metrics.json-ready


def test_official_views_are_softmax_averaged_in_evaluate(tiny_synthetic):
    dataset = HMDB51(*tiny_synthetic, subset="test")
    model = tiny_model()
    out = evaluation.evaluate(model, dataset, views="official", num_clips=2, num_frames=2,
                              sampling_rate=3, image_size=8, batch_size=6, progress=False)
    for (path, _), p in zip(dataset.items, out["predictions"]):
        x = load_video_views(path, num_frames=2, sampling_rate=3, image_size=8, views="official",
                             num_clips=2, mean=model_mean(model), std=model_std(model))
        probs = np_softmax(keras.ops.convert_to_numpy(model(x)).astype("float64")).mean(axis=0)
        assert p["top5"][0][1] == pytest.approx(probs.max(), abs=1e-4)


def model_mean(model):
    from keras_har.data.normalization import IMAGENET_MEAN

    return getattr(model, "image_mean", IMAGENET_MEAN)


def model_std(model):
    from keras_har.data.normalization import IMAGENET_STD

    return getattr(model, "image_std", IMAGENET_STD)


def test_bootstrap_interval_estimates_the_binomial_spread():
    """Resampling n videos of which k are right: the bootstrap top-1 follows
    Binomial(n, k/n) / n, so its 2.5% / 97.5% points are that law's."""
    n, k = 400, 300
    correct = np.zeros(n)
    correct[np.random.default_rng(5).permutation(n)[:k]] = 1
    low, high = evaluation.bootstrap_ci(correct, resamples=1000, seed=0)
    law = stats.binom(n, k / n)
    assert low == pytest.approx(law.ppf(0.025) / n, abs=0.01)
    assert high == pytest.approx(law.ppf(0.975) / n, abs=0.01)
    assert low < k / n < high
    # Seeded; all-right and all-wrong have no spread; more videos, a narrower interval.
    assert evaluation.bootstrap_ci(correct, seed=0) == [low, high]
    assert evaluation.bootstrap_ci(correct, seed=1) != [low, high]
    assert evaluation.bootstrap_ci(np.ones(50)) == [1.0, 1.0]
    assert evaluation.bootstrap_ci(np.zeros(50)) == [0.0, 0.0]
    wide = evaluation.bootstrap_ci(correct[:100])
    assert wide[1] - wide[0] > 1.5 * (high - low)
    m = evaluation.classification_metrics(np.eye(3)[[0, 1, 2, 0]], np.array([0, 1, 2, 1]))
    assert m["top1_ci95"] == evaluation.bootstrap_ci([1, 1, 1, 0])


def test_hard_profile_layout_and_determinism(tmp_path):
    videos, splits = make_synthetic_dataset(tmp_path / "a", profile="hard", train_per_class=2,
                                            test_per_class=1, image_size=32)
    train = HMDB51(videos, splits, subset="train")
    assert train.class_names == sorted(HARD_CLASSES) and len(HARD_CLASSES) == 10
    assert {c for p in HARD_PAIRS for c in p} == set(HARD_CLASSES)  # every class has a reversed partner
    meta = json.loads((tmp_path / "a" / "synthetic.json").read_text())
    assert meta["profile"] == "hard" and meta["num_frames"] == [10, 20]
    counts = [sum(1 for _ in decoding.iter_frames(p)) for p in train.paths]
    assert all(10 <= c <= 20 for c in counts) and len(set(counts)) > 1  # short, variable length
    again, _ = make_synthetic_dataset(tmp_path / "b", profile="hard", train_per_class=2,
                                      test_per_class=1, image_size=32)
    for p in train.paths[:3]:
        q = str(p).replace(str(tmp_path / "a"), str(tmp_path / "b"))
        assert open(p, "rb").read() == open(q, "rb").read()

"""Metrics against hand computation; view averaging against per-view calls."""

import keras
import numpy as np
import pytest

from keras_har import evaluation


def test_metrics_match_hand_computation():
    # 5 videos, 3 classes; rows are logits.
    logits = np.array(
        [
            [3.0, 1.0, 0.0],  # true 0, predicted 0
            [0.0, 2.0, 1.0],  # true 1, predicted 1
            [2.0, 0.0, 1.0],  # true 2, predicted 0 (2nd: 2)
            [0.0, 1.0, 3.0],  # true 2, predicted 2
            [1.0, 3.0, 2.0],  # true 0, predicted 1 (3rd: 0)
        ]
    )
    labels = np.array([0, 1, 2, 2, 0])
    m = evaluation.classification_metrics(logits, labels)
    assert m["top1"] == pytest.approx(3 / 5)
    assert m["top5"] == pytest.approx(1.0)  # k = min(5, 3) covers all
    # per class: class 0: 1/2, class 1: 1/1, class 2: 1/2
    assert m["per_class_accuracy"] == pytest.approx([0.5, 1.0, 0.5])
    assert m["mean_class_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_top5_with_many_classes():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 10))
    labels = rng.integers(0, 10, size=50)
    ranks = (logits > logits[np.arange(50), labels][:, None]).sum(axis=1)
    m = evaluation.classification_metrics(logits, labels)
    assert m["top5"] == pytest.approx(np.mean(ranks < 5))
    assert m["top1"] == pytest.approx(np.mean(ranks == 0))


def tiny_model(num_classes=4):
    inputs = keras.Input((2, 8, 8, 3))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs)


def test_view_logits_average_per_view_calls():
    model = tiny_model()
    x = np.random.default_rng(1).normal(size=(3, 6, 2, 8, 8, 3)).astype("float32")
    averaged = evaluation.view_logits(model, x)
    per_view = np.stack(
        [keras.ops.convert_to_numpy(model(x[:, v])) for v in range(6)], axis=1
    ).mean(axis=1)
    np.testing.assert_allclose(averaged, per_view, rtol=1e-5, atol=1e-5)


def test_evaluate_reports_predictions():
    model = tiny_model(num_classes=3)
    rng = np.random.default_rng(2)
    batches = [
        (rng.normal(size=(2, 6, 2, 8, 8, 3)).astype("float32"), np.eye(3)[[0, 1]]),
        (rng.normal(size=(1, 6, 2, 8, 8, 3)).astype("float32"), np.array([2])),
    ]
    out = evaluation.evaluate(model, batches, class_names=["a", "b", "c"],
                              paths=["v0.avi", "v1.avi", "v2.avi"], progress=False)
    assert out["num_videos"] == 3
    logits = np.concatenate([evaluation.view_logits(model, x) for x, _ in batches])
    assert [p["predicted"] for p in out["predictions"]] == [["a", "b", "c"][i] for i in logits.argmax(1)]
    assert [p["label"] for p in out["predictions"]] == ["a", "b", "c"]
    assert out["predictions"][2]["path"] == "v2.avi"
    probs = [p for _, p in out["predictions"][0]["top5"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="Expected videos"):
        evaluation.view_logits(tiny_model(), np.zeros((2, 8, 8, 3), "float32"))

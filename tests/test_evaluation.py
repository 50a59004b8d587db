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


def test_package_exports_evaluate():
    import keras_har

    assert keras_har.evaluate is evaluation.evaluate


def test_classification_metrics_rejects_bad_labels():
    with pytest.raises(ValueError, match="Labels must be in"):
        evaluation.classification_metrics(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="No videos"):
        evaluation.classification_metrics(np.zeros((0, 3)), np.array([], "int64"))


def test_empty_class_is_left_out_of_the_mean():
    logits = np.array([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 2.0, 1.0]])
    m = evaluation.classification_metrics(logits, np.array([0, 1, 0]))
    assert m["per_class_accuracy"] == [0.5, 1.0, None]
    assert m["mean_class_accuracy"] == pytest.approx(0.75)


class CountingModel:
    """Records the batch shape of every model call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def predict_on_batch(self, x):
        self.calls.append(x.shape)
        return self.model.predict_on_batch(x)


def test_all_views_of_a_batch_go_through_the_model_in_one_call():
    model = CountingModel(tiny_model())
    x = np.random.default_rng(3).normal(size=(2, 15, 2, 8, 8, 3)).astype("float32")
    assert evaluation.view_logits(model, x).shape == (2, 4)
    assert model.calls == [(30, 2, 8, 8, 3)]


def test_skipped_videos_are_counted_once_and_paths_follow_the_index():
    """A loader with `with_index=True` replaces an unreadable video by the next
    one, which then comes twice: evaluate keeps it once, under its own path."""
    model = tiny_model(num_classes=3)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 2, 8, 8, 3)).astype("float32")
    x[1] = x[2]  # item 1 was unreadable: slot 1 holds item 2
    batches = [(x[:2], np.array([0, 2]), np.array([0, 2])), (x[2:], np.array([2, 0]), np.array([2, 3]))]
    out = evaluation.evaluate(model, batches, class_names=list("abc"), progress=False,
                              paths=["v0", "v1", "v2", "v3"])
    assert out["num_videos"] == 3
    assert [p["path"] for p in out["predictions"]] == ["v0", "v2", "v3"]
    logits = evaluation.view_logits(model, x[[0, 2, 3]])
    expected = evaluation.classification_metrics(logits, np.array([0, 2, 0]))
    assert out["top1"] == pytest.approx(expected["top1"])
    assert out["confusion_matrix"] == expected["confusion_matrix"]


@pytest.mark.parametrize("views,pipeline_views,count", [("single", "single", 1), ("tta", "tta6", 6),
                                                        ("official", "official", 6)])
def test_evaluate_a_dataset_index(tiny_synthetic, views, pipeline_views, count):
    """`keras_har.evaluate(model, dataset, views=...)` against per-video model
    calls on `load_video_views`, metrics by hand."""
    from keras_har.data import HMDB51, load_video_views

    videos, splits = tiny_synthetic
    dataset = HMDB51(videos, splits, subset="test")
    model = tiny_model(num_classes=6)
    mean, std = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
    model.image_mean, model.image_std = mean, std
    num_clips = 2 if views == "official" else None
    out = evaluation.evaluate(model, dataset, views=views, num_clips=num_clips, num_frames=2,
                              sampling_rate=3, image_size=8, batch_size=5, progress=False)
    predicted, labels = [], []
    for path, label in dataset.items:
        x = load_video_views(path, num_frames=2, sampling_rate=3, image_size=8, mean=mean, std=std,
                             views=pipeline_views, num_clips=num_clips or 1)
        x = x[None] if x.ndim == 4 else x
        assert len(x) == count
        logits = keras.ops.convert_to_numpy(model(x)).astype("float64")
        if views == "official":  # VideoMAE's protocol: probabilities averaged
            logits = np.exp(logits - logits.max(axis=1, keepdims=True))
            logits = (logits / logits.sum(axis=1, keepdims=True)).mean(axis=0)
        else:  # the reference protocol's: logits averaged
            logits = logits.mean(axis=0)
        predicted.append(int(np.argmax(logits)))
        labels.append(label)
    assert out["num_views"] == count and out["views"] == views and out["skipped_videos"] == []
    assert out["top1"] == pytest.approx(np.mean(np.equal(predicted, labels)))
    assert [p["predicted"] for p in out["predictions"]] == [dataset.class_names[i] for i in predicted]
    assert [p["path"] for p in out["predictions"]] == dataset.paths
    confusion = np.zeros((6, 6), int)
    for t, p in zip(labels, predicted):
        confusion[t, p] += 1
    assert out["confusion_matrix"] == confusion.tolist()


def test_evaluate_checks_the_classes(tiny_synthetic):
    from keras_har.data import HMDB51

    dataset = HMDB51(*tiny_synthetic, subset="test")
    with pytest.raises(ValueError, match="6 classes, the model 4"):
        model = tiny_model(num_classes=4)
        model.num_classes = 4
        evaluation.evaluate(model, dataset, num_frames=2, image_size=8, progress=False)
    with pytest.raises(ValueError, match="num_clips is for views='official'"):
        evaluation.evaluate(tiny_model(6), dataset, views="tta", num_clips=3, num_frames=2, image_size=8)


def test_clip_settings_defaults():
    assert evaluation.clip_settings(tiny_model()) == (16, 2, 224)
    assert evaluation.clip_settings(tiny_model(), 8, 4, 112) == (8, 4, 112)

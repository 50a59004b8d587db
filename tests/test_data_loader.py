"""grain and tf.data loaders: shapes, determinism, bad videos and `model.fit`."""

import logging

import keras
import numpy as np
import pytest
from conftest import moving_square_frames, write_video

from keras_har.data import HMDB51, VideoReadError, VideoFolder, make_loader

CLIP = dict(num_frames=4, sampling_rate=2, image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)


@pytest.fixture(scope="module")
def train_set(tiny_synthetic):
    return HMDB51(*tiny_synthetic, split=1, subset="train")  # 24 videos


@pytest.fixture(scope="module")
def test_set(tiny_synthetic):
    return HMDB51(*tiny_synthetic, split=1, subset="test")  # 12 videos


def first_batches(loader, n):
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize("loader", ["grain", "tf"])
def test_training_batches(train_set, loader):
    with make_loader(train_set, training=True, batch_size=8, loader=loader, workers=1,
                     mixup_alpha=0.8, cutmix_alpha=1.0, **CLIP) as data:
        assert data.steps_per_epoch == len(data) == 3
        batches = list(data)
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == (8, 4, 32, 32, 3) and x.dtype == np.float32
        assert y.shape == (8, 6) and y.dtype == np.float32
        np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
        assert -1.001 <= x.min() and x.max() <= 1.001


def test_grain_and_tf_give_the_same_batches(train_set):
    kwargs = dict(training=True, batch_size=4, mixup_alpha=0.8, cutmix_alpha=1.0, seed=5, **CLIP)
    with make_loader(train_set, loader="grain", workers=2, **kwargs) as data:
        grain_batches = first_batches(data, 2)
    with make_loader(train_set, loader="tf", workers=2, **kwargs) as data:
        tf_batches = first_batches(data, 2)
    for (xg, yg), (xt, yt) in zip(grain_batches, tf_batches):
        np.testing.assert_allclose(xg, xt, atol=1e-6)
        np.testing.assert_allclose(yg, yt, atol=1e-6)
    other = first_batches(make_loader(train_set, loader="grain", workers=0,
                                      **{**kwargs, "seed": 6}), 1)
    assert not np.allclose(other[0][0], grain_batches[0][0])


def test_new_order_every_epoch_and_eval_in_items_order(train_set, test_set):
    data = make_loader(train_set, training=True, batch_size=8, workers=0, with_index=True, **CLIP)
    stream = [np.asarray(b[2]) for b in data.build(0, 2)]
    epoch0, epoch1 = np.concatenate(stream[:3]), np.concatenate(stream[3:])
    assert sorted(epoch0) == sorted(epoch1) == list(range(24))
    assert not np.array_equal(epoch0, epoch1)
    resumed = [np.asarray(b[2]) for b in data.build(1, 2)]  # resuming at epoch 1
    np.testing.assert_array_equal(np.concatenate(resumed), epoch1)

    evals = make_loader(test_set, training=False, batch_size=5, workers=0, with_index=True, **CLIP)
    batches = list(evals)
    assert [len(b[0]) for b in batches] == [5, 5, 2]  # every video counted
    np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), np.arange(12))
    labels = np.concatenate([b[1].argmax(1) for b in batches])
    np.testing.assert_array_equal(labels, [y for _, y in test_set.items])


@pytest.mark.parametrize("loader", ["grain", "tf"])
def test_multi_view_eval_shapes(test_set, loader):
    for views, v in (("tta6", 6), ("official", 6)):
        with make_loader(test_set, training=False, batch_size=4, loader=loader, workers=1,
                         views=views, num_clips=2, **CLIP) as data:
            x, y = next(iter(data))
        assert x.shape == (4, v, 4, 32, 32, 3) and y.shape == (4, 6)


@pytest.fixture
def folder_with_bad_videos(tmp_path):
    import cv2

    (tmp_path / "a").mkdir()
    for i in range(5):
        write_video(tmp_path / "a" / f"good_{i}.avi", moving_square_frames(10, 32, 40, seed=i))
    (tmp_path / "a" / "random_bytes.avi").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "a" / "empty.avi").write_bytes(b"")
    writer = cv2.VideoWriter(str(tmp_path / "a" / "zero_frames.avi"),
                             cv2.VideoWriter_fourcc(*"MJPG"), 25, (40, 32))
    writer.release()
    return VideoFolder(tmp_path)


@pytest.mark.parametrize("loader", ["grain", "tf"])
def test_bad_videos_are_skipped_and_counted(folder_with_bad_videos, loader, caplog, tmp_path):
    data = make_loader(folder_with_bad_videos, training=True, batch_size=4, loader=loader,
                       workers=1, bad_video_log=tmp_path / "bad_videos.txt", **CLIP)
    with data, caplog.at_level(logging.WARNING, logger="keras_har"):
        batches = list(data)
    assert len(batches) == 2 and all(x.shape == (4, 4, 32, 32, 3) for x, _ in batches)
    skipped = sorted({path.split("/")[-1] for path, _ in data.bad_videos()})
    assert skipped == ["empty.avi", "random_bytes.avi", "zero_frames.avi"]
    # a bad video's slot goes to the next video in `items`, which may be bad too
    assert "unreadable video reads this epoch (3 files" in caplog.text


@pytest.mark.parametrize("loader", ["grain", "tf"])
def test_on_error_raise_names_the_file(folder_with_bad_videos, loader):
    data = make_loader(folder_with_bad_videos, training=False, batch_size=8, loader=loader,
                       workers=0, on_error="raise", **CLIP)
    with pytest.raises(Exception, match=r"(empty|random_bytes|zero_frames)\.avi"):
        list(data)


def tiny_model(num_classes=6):
    model = keras.Sequential([
        keras.Input((4, 32, 32, 3)),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(num_classes),
    ])
    model.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("loader", ["grain", "tf"])
def test_model_fit_takes_the_loader(train_set, test_set, loader):
    if loader == "tf" and keras.backend.backend() == "torch":
        pytest.importorskip("tensorflow")
    data = make_loader(train_set, training=True, batch_size=8, loader=loader, workers=1,
                       mixup_alpha=0.8, epochs=2, **CLIP)
    val = make_loader(test_set, training=False, batch_size=8, loader=loader, workers=0, **CLIP)
    with data, val:
        history = tiny_model().fit(data.for_fit(), steps_per_epoch=data.steps_per_epoch, epochs=2,
                                   validation_data=val.build(), verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.all(np.isfinite(history.history["val_loss"]))


def test_multi_view_is_for_evaluation(train_set):
    with pytest.raises(ValueError, match="evaluation"):
        make_loader(train_set, training=True, batch_size=2, views="tta6", **CLIP)
    with pytest.raises(ValueError, match="views"):
        make_loader(train_set, training=False, batch_size=2, views="tta5", **CLIP)


def test_the_normalisation_is_the_models(train_set):
    """The loader has no normalisation of its own: mean and std come from the
    model (its video converter), and a loader without them is a clear error."""
    clip = {k: v for k, v in CLIP.items() if k not in ("mean", "std")}
    with pytest.raises(ValueError, match="mean= and std="):
        make_loader(train_set, training=True, batch_size=2, **clip)


def test_on_error_raise_without_workers_is_a_video_read_error(folder_with_bad_videos):
    data = make_loader(folder_with_bad_videos, training=False, batch_size=8, workers=0,
                       on_error="raise", **CLIP)
    with pytest.raises(VideoReadError):
        list(data)


def test_keras_spec_read_decodes_the_first_batches_once(folder_with_bad_videos, tmp_path):
    """Keras' grain adapter reads a dataset's first two batches for their spec
    and drops that iterator before iterating the dataset: the iterator that
    follows replays those batches from the same worker, so each video is
    decoded once a pass. Oracle: the unreadable videos the workers log, against
    one plain pass without workers."""
    import collections

    def logged(path):
        return collections.Counter(line.split("\t")[0] for line in open(path))

    kwargs = dict(training=False, batch_size=2, with_weights=True, **CLIP)  # empty.avi is in batch 0
    with make_loader(folder_with_bad_videos, workers=0, bad_video_log=tmp_path / "once.txt",
                     **kwargs) as data:
        list(data)
    with make_loader(folder_with_bad_videos, workers=1, bad_video_log=tmp_path / "keras.txt",
                     **kwargs) as data:
        tiny_model(1).evaluate(data.build(), verbose=0)
    assert logged(tmp_path / "keras.txt") == logged(tmp_path / "once.txt")
    assert logged(tmp_path / "once.txt")[folder_with_bad_videos.items[0][0]] >= 1  # in batch 0


def test_reused_iterator_gives_the_same_batches(test_set):
    """An iterator dropped within the first two batches hands its worker to
    the dataset's next iterator, which starts over from the first batch; one
    that read further is closed, never handed on; `close()` ends them all."""
    import itertools
    import multiprocessing

    older = set(multiprocessing.active_children())
    with make_loader(test_set, training=False, batch_size=4, workers=0, **CLIP) as data:
        expected = list(data)  # 3 batches
    with make_loader(test_set, training=False, batch_size=4, workers=1, **CLIP) as data:
        ds = data.build()
        peek = list(itertools.islice(ds, 2))
        reused = [tuple(np.asarray(a) for a in b) for b in ds]
        further = iter(ds)
        for _ in range(3):
            next(further)
        further.close()
        fresh = [tuple(np.asarray(a) for a in b) for b in ds]
        assert [p is not None for p in peek] == [True, True]
    assert not [p for p in multiprocessing.active_children() if p not in older and p.is_alive()]
    for got in (reused, fresh):
        assert len(got) == len(expected) == 3
        for (x, y), (xe, ye) in zip(got, expected):
            np.testing.assert_array_equal(x, xe)
            np.testing.assert_array_equal(y, ye)
    np.testing.assert_array_equal(np.asarray(peek[1][0]), expected[1][0])

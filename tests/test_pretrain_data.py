"""Unlabelled video sources and the masked-clip loader of pre-training."""

import numpy as np
import pytest

from conftest import moving_square_frames, write_video
from keras_har import data
from keras_har.data import clip_transforms
from keras_har.data.masking import MaskGenerator
from keras_har.data.splits import DatasetIndexError
from keras_har.data.unlabelled import UnlabelledVideos


@pytest.fixture
def nested_videos(tmp_path):
    """Videos at several depths, plus files that are not videos."""
    root = tmp_path / "raw"
    paths = [root / "a.avi", root / "cam1" / "2024" / "b.avi", root / "cam2" / "c.AVI"]
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, moving_square_frames(10, 40, 56, seed=i))
    (root / "cam1" / "notes.txt").write_text("not a video")
    return root, paths


def test_folder_is_searched_recursively(nested_videos):
    root, paths = nested_videos
    videos = UnlabelledVideos.from_folder(root)
    assert sorted(videos.paths) == sorted(str(p) for p in paths)
    assert set(videos.labels) == {0}
    (root / "empty").mkdir()
    with pytest.raises(DatasetIndexError, match="no videos"):
        UnlabelledVideos.from_folder(root / "empty")


def test_csv_of_paths(nested_videos, tmp_path):
    root, paths = nested_videos
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\n{paths[0]},x\nraw/cam2/c.AVI\n")
    videos = UnlabelledVideos.from_csv(listing)
    assert videos.paths == [str(paths[0]), str(tmp_path / "raw" / "cam2" / "c.AVI")]
    listing.write_text("raw/missing.avi\n")
    with pytest.raises(DatasetIndexError, match="missing.avi"):
        UnlabelledVideos.from_csv(listing)


def test_labelled_train_split_loses_its_labels(tiny_synthetic):
    train = data.HMDB51(*tiny_synthetic, split=1, subset="train")
    videos = UnlabelledVideos.from_dataset(train)
    assert videos.paths == train.paths and set(videos.labels) == {0}


def test_multi_scale_crop_is_one_box_for_the_clip():
    rng = np.random.default_rng(0)
    allowed = {int(240 * s) for s in clip_transforms.MULTI_SCALES} | {224}
    for _ in range(50):
        y, x, h, w = clip_transforms.multi_scale_crop_box(240, 320, 224, rng)
        assert h in allowed and w in allowed and 0 <= y <= 240 - h and 0 <= x <= 320 - w
    frame = moving_square_frames(1, 48, 64, seed=3)[0]
    clip = clip_transforms.pretrain_clip(np.stack([frame] * 4), 32, np.random.default_rng(1), flip_prob=1.0)
    assert clip.shape == (4, 32, 32, 3)
    assert all((clip[t] == clip[0]).all() for t in range(4))  # the same crop and flip for every frame


def loader_batches(videos, loader, training=True, **kwargs):
    generator = MaskGenerator(4, 32, 8, 2, 0.75)
    it = data.make_loader(videos, training=training, batch_size=2, mask_generator=generator, num_frames=4,
                          image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, loader=loader, workers=0, seed=3,
                          epochs=2, **kwargs)
    return generator, it, list(iter(it.for_fit()))


def test_grain_and_tf_give_the_same_masked_batches(tiny_synthetic):
    videos = UnlabelledVideos(data.HMDB51(*tiny_synthetic, split=1, subset="train").paths[:4])
    generator, grain_loader, grain_batches = loader_batches(videos, "grain")
    _, _, tf_batches = loader_batches(videos, "tf")
    assert len(grain_batches) == len(tf_batches) == 2 * grain_loader.steps_per_epoch
    for a, b in zip(grain_batches, tf_batches):
        assert set(a) == {"videos", "bool_masked_pos"}
        np.testing.assert_array_equal(np.asarray(a["videos"]), np.asarray(b["videos"]))
        np.testing.assert_array_equal(np.asarray(a["bool_masked_pos"]), np.asarray(b["bool_masked_pos"]))
        mask = np.asarray(a["bool_masked_pos"])
        assert mask.dtype == bool and mask.shape == (2, generator.num_tokens)
        assert (mask.sum(axis=1) == generator.num_masked).all()
        assert np.asarray(a["videos"]).shape == (2, 4, 32, 32, 3)
    # Epoch 2 draws new masks; a new loader with the same seed repeats them all.
    masks = [np.asarray(b["bool_masked_pos"]) for b in grain_batches]
    assert not all((m1 == m2).all() for m1, m2 in zip(masks[:2], masks[2:]))
    _, _, again = loader_batches(videos, "grain")
    for a, b in zip(grain_batches, again):
        np.testing.assert_array_equal(np.asarray(a["bool_masked_pos"]), np.asarray(b["bool_masked_pos"]))


def test_held_out_clips_are_fixed(tiny_synthetic):
    videos = UnlabelledVideos(data.HMDB51(*tiny_synthetic, split=1, subset="test").paths[:3])
    _, loader, _ = loader_batches(videos, "grain", training=False)
    first, second = list(loader), list(loader)
    assert [b["videos"].shape[0] for b in first] == [2, 1]  # the last partial batch kept
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["bool_masked_pos"], b["bool_masked_pos"])
        np.testing.assert_array_equal(a["videos"], b["videos"])


def test_stratified_subset(tiny_synthetic):
    from keras_har.data.subsets import stratified_subset

    train = data.HMDB51(*tiny_synthetic, split=1, subset="train")  # 6 classes x 4 videos
    half = stratified_subset(train, 0.5, seed=0)
    assert half.class_names == train.class_names
    assert np.bincount(half.labels).tolist() == [2] * 6
    assert set(half.items) <= set(train.items)
    assert stratified_subset(train, 0.5, seed=0).items == half.items
    assert any(stratified_subset(train, 0.5, seed=s).items != half.items for s in (1, 2, 3))
    assert np.bincount(stratified_subset(train, 0.01).labels).tolist() == [1] * 6  # at least one each
    assert stratified_subset(train, 1.0) is train
    with pytest.raises(ValueError, match="fraction"):
        stratified_subset(train, 0.0)

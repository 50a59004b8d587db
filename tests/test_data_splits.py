"""Dataset indexes parsed from hand-written split files, lists and folders."""

import json

import pytest

from keras_har.data import (
    HMDB51,
    UCF101,
    DatasetIndexError,
    VideoCSV,
    VideoFolder,
    load_label_map,
)


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def hmdb(tmp_path):
    """Two classes; split 1 lists 2 train, 1 test, 1 unused video per class."""
    root, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    for cls in ("wave", "brush_hair"):
        lines = []
        for i, tag in enumerate((1, 2, 1, 0)):
            touch(root / cls / f"{cls}_{i}.avi")
            lines.append(f"{cls}_{i}.avi {tag} ")  # the official files end lines with a space
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root, splits


def test_hmdb51_reads_subsets_and_sorted_classes(hmdb):
    root, splits = hmdb
    train = HMDB51(root, splits, split=1, subset="train")
    test = HMDB51(root, splits, split=1, subset="test")
    assert train.class_names == ["brush_hair", "wave"]
    assert train.label_map() == {"brush_hair": 0, "wave": 1}
    assert len(train) == 4 and len(test) == 2
    assert sorted((p.split("/")[-1], y) for p, y in train.items) == [
        ("brush_hair_0.avi", 0), ("brush_hair_2.avi", 0), ("wave_0.avi", 1), ("wave_2.avi", 1)]
    assert sorted(p.split("/")[-1] for p, _ in test.items) == ["brush_hair_1.avi", "wave_1.avi"]
    assert all(p.startswith(str(root)) for p, _ in train.items)


def test_hmdb51_malformed_line_names_file_and_line(hmdb):
    root, splits = hmdb
    bad = splits / "wave_test_split1.txt"
    bad.write_text("wave_0.avi 1\nwave_1.avi train\n")
    with pytest.raises(DatasetIndexError, match=r"wave_test_split1\.txt:2"):
        HMDB51(root, splits, split=1)


def test_hmdb51_missing_split_file_and_class_folder(hmdb, tmp_path):
    root, splits = hmdb
    with pytest.raises(DatasetIndexError, match="_test_split3.txt"):
        HMDB51(root, splits, split=3)
    with pytest.raises(DatasetIndexError, match="nowhere"):
        HMDB51(root, tmp_path / "nowhere", split=1)
    (root / "wave").rename(root / "waving")
    with pytest.raises(DatasetIndexError, match=r"wave.*wave_test_split1\.txt"):
        HMDB51(root, splits, split=1)


def test_hmdb51_missing_videos_error_or_skip(hmdb):
    root, splits = hmdb
    (root / "wave" / "wave_0.avi").unlink()
    with pytest.raises(DatasetIndexError, match="wave_0.avi"):
        HMDB51(root, splits, split=1)
    kept = HMDB51(root, splits, split=1, missing="skip")
    assert len(kept) == 3


@pytest.fixture
def ucf(tmp_path):
    root, lists = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n3 YoYo\n")
    train = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "YoYo/v_YoYo_g08_c01.avi 3",
             "Archery/v_Archery_g08_c01.avi 2"]
    test = ["Archery/v_Archery_g01_c01.avi", "YoYo/v_YoYo_g01_c01.avi"]
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    for line in train + test:
        touch(root / line.split()[0])
    return root, lists


def test_ucf101_parses_train_and_test_lists(ucf):
    root, lists = ucf
    train = UCF101(root, lists, split=1, subset="train")
    test = UCF101(root, lists, split=1, subset="test")
    assert train.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]
    assert [(p.split("/")[-1], y) for p, y in train.items] == [
        ("v_ApplyEyeMakeup_g08_c01.avi", 0), ("v_YoYo_g08_c01.avi", 2), ("v_Archery_g08_c01.avi", 1)]
    assert [y for _, y in test.items] == [1, 2]


def test_ucf101_errors_name_the_file(ucf):
    root, lists = ucf
    with pytest.raises(DatasetIndexError, match="trainlist02.txt"):
        UCF101(root, lists, split=2)
    (lists / "trainlist01.txt").write_text("Archery/v_Archery_g08_c01.avi 2\nArchery/x.avi two\n")
    with pytest.raises(DatasetIndexError, match=r"trainlist01\.txt:2"):
        UCF101(root, lists, split=1)
    (lists / "trainlist01.txt").write_text("Archery/v_Archery_g08_c01.avi 1\n")
    with pytest.raises(DatasetIndexError, match=r"trainlist01\.txt:1.*classInd"):
        UCF101(root, lists, split=1)
    (lists / "testlist01.txt").write_text("Bowling/v_Bowling_g01_c01.avi\n")
    with pytest.raises(DatasetIndexError, match=r"testlist01\.txt:1.*Bowling"):
        UCF101(root, lists, split=1, subset="test")


def test_video_folder_flat_and_train_val(tmp_path):
    for sub in ("train", "val"):
        for cls in ("b", "a"):
            touch(tmp_path / sub / cls / f"x.{'mp4' if cls == 'a' else 'avi'}")
    touch(tmp_path / "train" / "a" / "notes.txt")
    train = VideoFolder(tmp_path, subset="train")
    assert train.class_names == ["a", "b"]
    assert [(p.split("/")[-1], y) for p, y in train.items] == [("x.mp4", 0), ("x.avi", 1)]
    flat = VideoFolder(tmp_path / "val")
    assert len(flat) == 2
    with pytest.raises(DatasetIndexError, match="test"):
        VideoFolder(tmp_path, subset="test")


def test_video_csv_names_and_ints(tmp_path):
    touch(tmp_path / "v" / "1.avi")
    touch(tmp_path / "v" / "2.avi")
    names = tmp_path / "names.csv"
    names.write_text("path,label\nv/1.avi,walk\nv/2.avi,run\n")
    ds = VideoCSV(names)
    assert ds.class_names == ["run", "walk"] and [y for _, y in ds.items] == [1, 0]
    ints = tmp_path / "ints.csv"
    ints.write_text("v/1.avi,2\nv/2.avi,0\n")
    assert [y for _, y in VideoCSV(ints).items] == [2, 0]
    bad = tmp_path / "bad.csv"
    bad.write_text("v/1.avi,walk\nv/2.avi,swim\n")
    with pytest.raises(DatasetIndexError, match=r"bad\.csv:2.*swim"):
        VideoCSV(bad, class_names=["run", "walk"])


def test_label_map_round_trip(hmdb, tmp_path):
    ds = HMDB51(*hmdb, split=1)
    path = ds.save_label_map(tmp_path / "run" / "label_map.json")
    assert json.loads(path.read_text()) == {"brush_hair": 0, "wave": 1}
    assert load_label_map(path) == ds.class_names

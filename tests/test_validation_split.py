"""The held-out validation set: stratified by class, grouped by source video
(on generated HMDB51-, UCF101-, folder- and CSV-style trees, whose sources the
generators know), deterministic from the seed; a recipe selects on it and
reads the test videos only in its final evaluation."""

import json
import pathlib

import numpy as np
import pytest

from keras_har.data import HMDB51, UCF101, DatasetIndexError, VideoCSV, VideoFolder
from keras_har.data import validation_split as vs
from keras_har.data.dataset_flags import train_val_test


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def hmdb_tree(tmp_path, seed=0):
    """HMDB51 names `<movie>_<class>_<tags>_<n>.avi`; movies recur across
    classes. Returns (root, splits, {file name: movie})."""
    rng = np.random.default_rng(seed)
    root, splits = tmp_path / "hmdb51", tmp_path / "splits"
    splits.mkdir(parents=True)
    movies = ["April_09", "Pirates_of_the_Caribbean", "20060723sfjffbartsinger", "Kiss_Me_Kate",
              "LONGESTYARD", "Veoh_Alpha_Dog", "Faith_Rewarded", "likebeckam"]
    source = {}
    for cls in ("brush_hair", "wave", "kiss", "shoot_ball"):
        lines = []
        for movie in rng.choice(movies, size=6, replace=False):
            for n in range(int(rng.integers(1, 4))):  # 1-3 clips cut from each movie
                tags = f"{rng.choice(list('fhlu'))}_{rng.choice(['cm', 'nm'])}_np{rng.integers(1, 3)}_" \
                       f"{rng.choice(['fr', 'ba', 'le', 'ri'])}_{rng.choice(['bad', 'med', 'goo'])}"
                name = f"{movie}_{cls}_{tags}_{n}.avi"
                touch(root / cls / name)
                source[name] = movie
                lines.append(f"{name} {1 if movie != movies[0] else 2} ")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root, splits, source


def ucf_tree(tmp_path):
    root, splits = tmp_path / "ucf101", tmp_path / "ucfTrainTestlist"
    splits.mkdir(parents=True)
    classes = ["ApplyEyeMakeup", "Archery", "Biking"]
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train, test, source = [], [], {}
    for i, cls in enumerate(classes):
        for g in range(1, 13):
            for c in range(1, 2 + g % 3):
                rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
                touch(root / rel)
                source[pathlib.Path(rel).name] = (cls, g)
                (test if g <= 3 else train).append(rel)
            # the index file lists train videos with their class index
    (splits / "trainlist01.txt").write_text(
        "".join(f"{r} {classes.index(r.split('/')[0]) + 1}\n" for r in train))
    (splits / "testlist01.txt").write_text("".join(f"{r}\n" for r in test))
    return root, splits, source


def sides(dataset_train, dataset_val):
    return [pathlib.Path(p).name for p in dataset_train.paths], [pathlib.Path(p).name for p in dataset_val.paths]


def check_stratified(train, val, fraction):
    for label in range(len(train.class_names)):
        n_val = val.labels.count(label)
        n_all = n_val + train.labels.count(label)
        assert n_val >= 1 and train.labels.count(label) >= 1
        assert abs(n_val - fraction * n_all) <= max(3, 0.5 * fraction * n_all)


@pytest.mark.parametrize("seed", [0, 1])
def test_hmdb51_no_movie_crosses_train_and_validation(tmp_path, seed):
    root, splits, source = hmdb_tree(tmp_path)
    train = HMDB51(root, splits, subset="train")
    part, val = vs.carve_validation(train, 0.25, seed=seed)
    names_train, names_val = sides(part, val)
    assert sorted(names_train + names_val) == sorted(pathlib.Path(p).name for p in train.paths)
    assert {source[n] for n in names_train}.isdisjoint({source[n] for n in names_val})
    check_stratified(part, val, 0.25)
    # Deterministic from the seed.
    again = vs.carve_validation(HMDB51(root, splits, subset="train"), 0.25, seed=seed)[1]
    assert again.paths == val.paths


def test_hmdb51_group_is_the_movie():
    assert vs.hmdb51_group("x/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair") == "April_09"
    assert vs.hmdb51_group("x/April_09_brush_hair_h_cm_np2_le_med_11.avi", "brush_hair") == "April_09"
    assert vs.hmdb51_group("x/wave_3.avi", "wave") == "wave_3"  # not an HMDB51 name: its own source


def test_ucf101_no_group_crosses_train_and_validation(tmp_path):
    root, splits, source = ucf_tree(tmp_path)
    train = UCF101(root, splits, subset="train")
    part, val = vs.carve_validation(train, 0.2, seed=3)
    names_train, names_val = sides(part, val)
    assert {source[n] for n in names_train}.isdisjoint({source[n] for n in names_val})
    assert len(names_train) + len(names_val) == len(train)
    check_stratified(part, val, 0.2)
    seeds = {tuple(vs.carve_validation(train, 0.2, seed=s)[1].paths) for s in range(4)}
    assert len(seeds) > 1  # the seed chooses the groups


def test_folder_rule_and_csv_group_column(tmp_path):
    source = {}
    for cls in ("jump", "run"):
        for s in range(8):
            for k in range(1 + s % 3):
                name = f"take{s}_{k:02d}.mp4"
                touch(tmp_path / "videos" / cls / name)
                source[f"{cls}/{name}"] = (cls, s)
    folder = VideoFolder(tmp_path / "videos")
    part, val = vs.carve_validation(folder, 0.3, seed=0)

    def key(p):
        return "/".join(pathlib.Path(p).parts[-2:])

    assert {source[key(p)] for p in part.paths}.isdisjoint({source[key(p)] for p in val.paths})
    check_stratified(part, val, 0.3)

    # CSV: the group column wins over the file names.
    rows = ["path,label,group"] + [f"videos/{k},{k.split('/')[0]},{k.split('/')[0][0]}{s % 2}"
                                   for k, (_, s) in source.items()]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    csv_index = VideoCSV(tmp_path / "list.csv")
    part, val = vs.carve_validation(csv_index, 0.3, seed=0)
    assert set(part.groups).isdisjoint(val.groups) and len(set(val.groups)) == 2  # one per class
    (tmp_path / "bad.csv").write_text("videos/jump/take0_00.mp4,jump,a\nvideos/run/take0_00.mp4,run\n")
    with pytest.raises(DatasetIndexError, match=r"bad\.csv:2"):
        VideoCSV(tmp_path / "bad.csv")


def test_split_keeps_a_training_video_of_every_class():
    labels = [0, 0, 1, 1, 1, 1, 2]
    groups = ["a", "a", "b", "c", "d", "e", "f"]  # class 0 is one source, class 2 one video
    train, val = vs.split_indices(labels, groups, 0.5, seed=0)
    assert {0, 1, 6} <= set(train) and set(val) <= {2, 3, 4, 5} and len(val) == 2
    with pytest.raises(ValueError, match="fraction"):
        vs.split_indices(labels, groups, 1.0)


def test_selection_test_is_the_seeds_protocol(tmp_path):
    root, splits, _ = hmdb_tree(tmp_path)
    settings = dict(dataset="hmdb51", data_root=str(root), split_dir=str(splits), seed=0)
    train, val, test = train_val_test({**settings, "selection": "test"})
    assert val.paths == test.paths and len(train) == len(HMDB51(root, splits))
    train, val, test = train_val_test({**settings, "val_fraction": 0.2})
    assert set(val.paths).isdisjoint(test.paths) and set(val.paths).isdisjoint(train.paths)
    with pytest.raises(ValueError, match="--selection"):
        train_val_test({**settings, "selection": "best"})


def test_recipe_selects_on_validation_and_reads_test_videos_once_at_the_end(
        tiny_synthetic, tmp_path, monkeypatch):
    """A spy on the decoder: training and checkpoint selection never read a
    test video; the final evaluation reads each test video exactly once (one
    decode for single view, TTA and official)."""
    from keras_har.data import decoding
    from keras_har.training import experiment
    from test_recipes import dataset_flags, load_recipe

    reads, stage = [], ["training"]
    real_read, real_final = decoding.read_clip, experiment.final_evaluation

    def spy_read(path, choose):
        reads.append((stage[0], str(path)))
        return real_read(path, choose)

    def spy_final(*args, **kwargs):
        stage[0] = "final"
        return real_final(*args, **kwargs)

    monkeypatch.setattr(decoding, "read_clip", spy_read)
    monkeypatch.setattr(experiment, "final_evaluation", spy_final)
    out = tmp_path / "run"
    metrics = load_recipe("baseline_vit_small").main(
        dataset_flags(tiny_synthetic) + ["--preset", "tiny", "--epochs", "1", "--tta-views", "6",
                                         "--output-dir", str(out)])
    test = HMDB51(*tiny_synthetic, subset="test")
    split = json.loads((out / "split.json").read_text())
    assert split["selection"] == "validation" and split["test"] == test.paths
    assert len(split["validation"]) == 6  # one of each class's 4 training videos
    training = {p for s, p in reads if s == "training"}
    assert training.isdisjoint(test.paths) and set(split["validation"]) <= training
    final = [p for s, p in reads if s == "final"]
    assert sorted(final) == sorted(test.paths)  # each test video decoded once
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["selection"] == "validation" and saved["num_val_videos"] == 6
    assert saved["num_videos"] == 12 and saved == json.loads(json.dumps(metrics))
    for name in ("single_view", "tta", "official"):
        low, high = saved[name]["top1_ci95"]
        assert 0.0 <= low <= saved[name]["top1"] <= high <= 1.0


def small_hmdb_tree(tmp_path, movies_per_class, clips=3):
    """An HMDB51 layout whose training split has `movies_per_class` source movies
    of `clips` clips for every class (and one test movie per class)."""
    root, splits = tmp_path / "hmdb51", tmp_path / "splits"
    splits.mkdir(parents=True)
    for cls in ("brush_hair", "wave", "kiss"):
        lines = []
        for m in range(movies_per_class + 1):
            for n in range(clips):
                name = f"{cls.replace('_', '')}Movie{m}_{cls}_u_nm_np1_fr_goo_{n}.avi"
                touch(root / cls / name)
                lines.append(f"{name} {2 if m == movies_per_class else 1}")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return dict(dataset="hmdb51", data_root=str(root), split_dir=str(splits), seed=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_small_grouped_dataset_gets_one_whole_source_per_class(tmp_path, caplog, seed):
    """4 training movies of 3 clips per class, the default --val-fraction 0.1
    (less than one movie): one whole movie of every class goes to validation,
    and the fraction realised is logged."""
    settings = small_hmdb_tree(tmp_path, movies_per_class=4)
    with caplog.at_level("INFO", logger="keras_har"):
        train, val, _ = train_val_test({**settings, "seed": seed})
    movie = {p: pathlib.Path(p).name.split("_")[0]
             for p in train.paths + val.paths}
    assert {movie[p] for p in train.paths}.isdisjoint({movie[p] for p in val.paths})
    assert len({movie[p] for p in val.paths}) == 3
    assert sorted(val.labels) == [0] * 3 + [1] * 3 + [2] * 3  # one movie (3 clips) of each class
    assert len(train) == 27
    assert "validation set: 9 of 36 training videos (25.0%, --val-fraction 0.1), 3 whole source groups" \
        in caplog.text


def test_one_source_per_class_is_refused_with_the_reason(tmp_path):
    settings = small_hmdb_tree(tmp_path, movies_per_class=1)
    with pytest.raises(ValueError, match=r"no validation video can be set aside: each of the 3 source "
                                         r"groups holds a class's only training source"):
        train_val_test(settings)

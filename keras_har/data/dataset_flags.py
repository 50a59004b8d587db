"""The dataset flags shared by the recipes and the `keras-har` command, and the
one function that turns them into a dataset index.

`settings` is parsed arguments or a dict with the keys of `DATASET_KEYS`.
Imports no Keras (the CLI builds its parser from `DATASETS`).
"""

import os
import pathlib

DATASETS = ("synthetic", "hmdb51", "ucf101", "folder", "csv")
DATASET_KEYS = ("dataset", "data_root", "split_dir", "split", "train_list", "val_list", "synthetic")
SYNTHETIC_PROFILES = ("easy", "hard")
SELECTIONS = ("validation", "test")
# The flags each dataset needs besides --dataset, per subset.
REQUIRED_FLAGS = {
    "synthetic": {"train": (), "test": ()},
    "hmdb51": {"train": ("data_root", "split_dir"), "test": ("data_root", "split_dir")},
    "ucf101": {"train": ("data_root", "split_dir"), "test": ("data_root", "split_dir")},
    "folder": {"train": ("data_root",), "test": ("data_root",)},
    "csv": {"train": ("train_list",), "test": ("val_list",)},
}
DEFAULT_SYNTHETIC_ROOT = pathlib.Path(
    os.environ.get("KERAS_HAR_CACHE", pathlib.Path.home() / ".cache" / "keras_har")
) / "synthetic"


def _getter(settings):
    return settings.get if isinstance(settings, dict) else (lambda key: getattr(settings, key, None))


def dataset_index(settings, subset, class_names=None, subsets=None):
    """The `subset` ("train" or "test") index of the dataset the flags name.

    `class_names` labels a folder or CSV test set with the training set's (or
    a model's) classes. Missing flags (those of every subset in `subsets`,
    default just `subset`) raise `DatasetIndexError` naming them, before
    anything is read.
    """
    from keras_har.data import splits, synthetic_videos

    get = _getter(settings)
    name, root = get("dataset"), get("data_root")
    if name not in REQUIRED_FLAGS:
        raise splits.DatasetIndexError(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}.")
    need = dict.fromkeys(flag for s in (subsets or (subset,)) for flag in REQUIRED_FLAGS[name][s])
    missing = [f"--{n.replace('_', '-')}" for n in need if not get(n)]
    if missing:
        raise splits.DatasetIndexError(f"--dataset {name} needs {' and '.join(missing)}.")
    split = int(get("split") or 1)
    if name == "synthetic":
        profile = get("synthetic") or "easy"
        if profile not in SYNTHETIC_PROFILES:
            raise splits.DatasetIndexError(
                f"--synthetic must be one of {', '.join(SYNTHETIC_PROFILES)}, got {profile!r}.")
        default_root = DEFAULT_SYNTHETIC_ROOT if profile == "easy" else DEFAULT_SYNTHETIC_ROOT / profile
        return synthetic_videos.SyntheticVideos(root or default_root, subset=subset, profile=profile)
    if name == "hmdb51":
        return splits.HMDB51(root, get("split_dir"), split=split, subset=subset)
    if name == "ucf101":
        return splits.UCF101(root, get("split_dir"), split=split, subset=subset)
    if name == "folder":
        # root/{train,val}/<class>/... trains on train/ and tests on val/; a plain
        # root/<class>/... is one set, used for both.
        split_folders = any((pathlib.Path(root) / s).is_dir() for s in ("train", "val"))
        if not split_folders:
            return splits.VideoFolder(root, class_names=class_names)
        return splits.VideoFolder(root, subset="train" if subset == "train" else "val",
                                  class_names=None if subset == "train" else class_names)
    if subset == "train":
        return splits.VideoCSV(get("train_list"), root=root)
    return splits.VideoCSV(get("val_list"), root=root, class_names=class_names)


def train_and_test(settings):
    """`(train, test)` indexes for the flags; the test set shares the training
    set's label map."""
    train = dataset_index(settings, "train", subsets=("train", "test"))
    return train, dataset_index(settings, "test", class_names=train.class_names)


def train_val_test(settings):
    """`(train, validation, test)` indexes for the flags.

    `settings.selection` "validation" (the default) carves a held-out
    validation set of `settings.val_fraction` (default 0.1) of the training
    split, stratified by class and grouped by source video, deterministic from
    `settings.seed` (`keras_har.data.validation_split`); the model is trained on
    the rest. "test" is the reference protocol: the validation set is the test
    split itself (selection on the reported split, optimistic).
    """
    from keras_har.data.validation_split import carve_validation

    get = _getter(settings)
    selection = get("selection") or "validation"
    if selection not in SELECTIONS:
        raise ValueError(f"--selection must be one of {', '.join(SELECTIONS)}, got {selection!r}.")
    train, test = train_and_test(settings)
    if selection == "test":
        return train, test, test
    fraction = get("val_fraction")
    fraction = 0.1 if fraction is None else float(fraction)
    train, val = carve_validation(train, fraction, seed=int(get("seed") or 0))
    return train, val, test

"""A held-out validation set carved from the training split, grouped by source video.

Checkpoint selection on the test split reports a number that was used to choose
it. `carve_validation(train, fraction, seed)` sets aside about `fraction` of
every class's training videos as a validation set instead: stratified by class,
and **grouped by source**, so that clips cut from the same source video never
sit on both sides. The source of a video (`source_group`):

* UCF101 (`v_<Class>_gXX_cYY.avi`): the class and its group `gXX` (UCF101's
  groups are per action: the clips of one group share actor and scene).
* HMDB51 (`<movie>_<class>_<tags>_<n>.avi`, e.g.
  `April_09_brush_hair_u_nm_np1_ba_goo_0.avi`): the movie, i.e. the name before
  `_<class>_`; clips of one movie in other classes share it too. A name
  without `_<class>_` (not from the HMDB51 archive) is its own source.
* VideoCSV with a third column `group` (header `path,label,group`): that column.
* SyntheticVideos: every generated video is drawn independently: its own source.
* anything else (a folder, a CSV without groups): the file name stem with a
  trailing clip counter removed (`_12`, `-12`, `_c03`, ` (2)`), so
  `walk_03.mp4` and `walk_04.mp4` are one source; name clips differently (or
  use a CSV group column) when that is wrong for your data.

The choice is deterministic from `seed`: groups are visited in a seeded order
and a group goes to validation when it brings the per-class validation counts
closer to `fraction` x each class's size (at least one video for a class of
two or more; squared error), never taking a class's last training video. Then
every class with two or more source groups that still has no validation video
gets one whole group (the one that keeps the counts closest to the targets),
even when a group is more than `fraction` of the class: small grouped datasets
get a validation set at the default fraction, and the fraction realised is
logged. A class whose videos are all one source gets no validation video (a
warning names it); when no class has two sources, `carve_validation` refuses.
"""

import logging
import pathlib
import re

import numpy as np

from keras_har.data.splits import HMDB51, UCF101, VideoDataset

logger = logging.getLogger("keras_har")

_CLIP_COUNTER = re.compile(r"(?:[_-]c?\d+|\s*\(\d+\))$", re.IGNORECASE)
_UCF_GROUP = re.compile(r"^v_(.+)_g(\d+)_c\d+$", re.IGNORECASE)
_HMDB_TAGS = r"_[a-z]_[a-z]{2}_np\d+_[a-z]{2}_[a-z]{3}_\d+$"


def generic_group(path):
    """The file stem without a trailing clip counter (the folder/CSV rule)."""
    stem = pathlib.Path(path).stem
    base = _CLIP_COUNTER.sub("", stem)
    return base or stem


def ucf101_group(path, class_name=None):
    """`<Class>_gXX` from `v_<Class>_gXX_cYY.avi` (else the generic rule)."""
    m = _UCF_GROUP.match(pathlib.Path(path).stem)
    if m is None:
        return generic_group(path)
    return f"{m.group(1)}_g{int(m.group(2)):02d}"


def hmdb51_group(path, class_name):
    """The movie of an HMDB51 clip: the name before `_<class>_` (else the stem)."""
    stem = pathlib.Path(path).stem
    m = re.match(rf"^(.+)_{re.escape(class_name)}{_HMDB_TAGS}", stem, re.IGNORECASE)
    if m is None:
        marker = f"_{class_name}_"
        cut = stem.lower().rfind(marker.lower())
        return stem[:cut] if cut > 0 else stem
    return m.group(1)


def source_groups(dataset):
    """One source key per item of `dataset` (see the module docstring)."""
    from keras_har.data.synthetic_videos import SyntheticVideos

    groups = getattr(dataset, "groups", None)
    if groups is not None:
        return [str(g) for g in groups]
    if isinstance(dataset, SyntheticVideos):
        return [str(p) for p in dataset.paths]
    names = dataset.class_names
    if isinstance(dataset, UCF101):
        return [ucf101_group(p) for p in dataset.paths]
    if isinstance(dataset, HMDB51):
        return [hmdb51_group(p, names[label]) for p, label in dataset.items]
    return [generic_group(p) for p in dataset.paths]


def split_indices(labels, groups, fraction, seed=0):
    """`(train_indices, val_indices)`: whole groups to validation, about
    `fraction` of every class (see the module docstring)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction!r}.")
    labels = np.asarray(labels, dtype="int64")
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels but {len(groups)} groups.")
    num_classes = int(labels.max()) + 1
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = sorted(members)
    order = np.random.default_rng([seed, 23]).permutation(len(keys))
    size = np.bincount(labels, minlength=num_classes).astype("float64")
    # About `fraction` of each class, but at least one video of every class
    # that has two or more (a tiny dataset still gets a validation set).
    target = np.maximum(fraction * size, np.minimum(1.0, size - 1))
    counts = {k: np.bincount(labels[members[keys[k]]], minlength=num_classes) for k in order}
    sources = np.sum([c > 0 for c in counts.values()], axis=0)
    taken = np.zeros(num_classes)
    chosen = []

    def fits(k):  # no class loses its last training video
        return not np.any((counts[k] > 0) & (taken + counts[k] >= size))

    def error(k):
        return np.sum((taken + counts[k] - target) ** 2)

    for k in order:
        if fits(k) and error(k) < np.sum((taken - target) ** 2):
            taken = taken + counts[k]
            chosen.append(k)
    # A whole group for each class of two or more sources still without one.
    for c in np.random.default_rng([seed, 29]).permutation(num_classes):
        if taken[c] > 0 or sources[c] < 2:
            continue
        candidates = [k for k in order if k not in chosen and counts[k][c] > 0 and fits(k)]
        if candidates:
            k = min(candidates, key=error)  # the first of equals in the seeded order
            taken = taken + counts[k]
            chosen.append(k)
    val = sorted(i for k in chosen for i in members[keys[k]])
    train = sorted(set(range(len(labels))) - set(val))
    return train, val


def carve_validation(train, fraction=0.1, seed=0):
    """`(train_part, validation)` indexes from the training index `train`."""
    groups = source_groups(train)
    train_idx, val_idx = split_indices(train.labels, groups, fraction, seed)
    if not val_idx:
        raise ValueError(
            f"{train.name}: no validation video can be set aside: each of the {len(set(groups))} "
            "source groups holds a class's only training source (a source goes wholly to one "
            "side, so a class needs two or more to give one); use --selection test, or name the "
            "sources in a CSV group column."
        )
    logger.info("validation set: %d of %d training videos (%.1f%%, --val-fraction %g), %d whole "
                "source groups", len(val_idx), len(groups), 100 * len(val_idx) / len(groups),
                fraction, len({groups[i] for i in val_idx}))
    val_labels = {train.items[i][1] for i in val_idx}
    missing = [n for c, n in enumerate(train.class_names) if c not in val_labels]
    if missing:
        logger.warning("validation set: no video of %d classes (one source each, or too few "
                       "videos): %s", len(missing), ", ".join(missing[:5]))
    part = VideoDataset([train.items[i] for i in train_idx], train.class_names,
                        name=f"{train.name} (without validation)")
    val = VideoDataset([train.items[i] for i in val_idx], train.class_names,
                       name=f"{train.name} (validation {fraction:g})")
    part.groups = [groups[i] for i in train_idx]
    val.groups = [groups[i] for i in val_idx]
    return part, val

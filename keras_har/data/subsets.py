"""A labelled fraction of a dataset, stratified by class (data-efficiency runs)."""

import numpy as np

from keras_har.data.splits import VideoDataset


def stratified_subset(dataset, fraction, seed=0):
    """`fraction` of every class's videos (at least one each), drawn with `seed`;
    the class names are kept, the items stay in the dataset's order."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}.")
    if fraction == 1.0:
        return dataset
    rng = np.random.default_rng([seed, 17])
    labels = np.array(dataset.labels)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, int(round(fraction * len(members))))
        keep.extend(rng.permutation(members)[:count].tolist())
    items = [dataset.items[i] for i in sorted(keep)]
    return VideoDataset(items, dataset.class_names, name=f"{dataset.name} ({fraction:g} per class)")

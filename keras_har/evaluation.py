"""Evaluation: single view, the reference protocol's 6-view TTA, the official multi-clip protocol.

`evaluate(model, data, ...)` takes either

* a dataset index (`HMDB51`, `UCF101`, `VideoFolder`, `VideoCSV`, anything
  with `.items` and `.class_names`): it decodes the videos itself with the
  test `views` ("single", "tta" = 3 crops x flip, "tta3", "official" =
  `num_clips` temporal clips x 3 crops), normalised for the model; or
* any iterable of batches `(x, y)` or `(x, y, item_index)` where `x` is
  `(B, T, H, W, 3)` (one view per video) or `(B, V, T, H, W, 3)` (V views per
  video, e.g. from `keras_har.data.make_loader(..., views="tta6")`).

All views of a batch go through the model in one call; their logits are
averaged per video (the reference protocol's TTA), except for "official", whose softmax
probabilities are averaged (VideoMAE's protocol). Every result carries
`top1_ci95`, a 95% bootstrap interval of top-1 over the videos.

`evaluate_protocols` reports single view, the reference protocol's TTA and the official
protocol from one decode of each video (`views="all"` batches).
"""

import numpy as np

from keras_har.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from keras_har.data.views import OFFICIAL_CLIPS, loader_views, num_views


def clip_settings(model, num_frames=None, sampling_rate=None, image_size=None):
    """`(num_frames, sampling_rate, image_size)`: the given values, else the model's
    (its backbone's frames and input size), else 16 frames, stride 2, 224 px."""
    backbone = getattr(model, "backbone", None)
    frames = getattr(backbone, "num_frames", None)
    size = getattr(model, "image_size", None) or getattr(backbone, "image_size", None)
    if size is None and getattr(backbone, "image_shape", None) is not None:
        size = tuple(backbone.image_shape[:2])
    if isinstance(size, (list, tuple)):
        if image_size is None and size[0] != size[1]:
            raise ValueError(
                f"the model takes non-square {size[0]}x{size[1]} frames; the test views "
                "are square crops (pass image_size only for a model that accepts it)."
            )
        size = size[0]
    return (
        int(num_frames or frames or 16),
        int(sampling_rate or 2),
        int(image_size or size or 224),
    )


def check_clip_settings(model, num_frames, image_size):
    """Raise a clear ValueError when the model's fixed input shape does not take
    clips of `num_frames` frames of `image_size` x `image_size`."""
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError, TypeError):
        return
    if len(shape) != 5:
        return
    frames, height, width = shape[1:4]
    if frames is not None and frames != num_frames:
        raise ValueError(f"the model takes clips of {frames} frames, not {num_frames}.")
    if height is not None and (height, width) != (image_size, image_size):
        raise ValueError(f"the model takes {height}x{width} frames, not {image_size}x{image_size}.")


def average_views(logits, average="logits"):
    """`(B, V, C)` per-view logits -> `(B, C)`: the mean of the logits
    ("logits", the reference protocol's TTA) or the log of the mean softmax ("softmax",
    VideoMAE's official protocol; its softmax is the mean probability)."""
    logits = np.asarray(logits)
    if average == "logits":
        return logits.mean(axis=1)
    if average == "softmax":
        return np.log(np.maximum(softmax(logits).mean(axis=1), 1e-30)).astype(logits.dtype)
    raise ValueError(f"average must be 'logits' or 'softmax', got {average!r}.")


def view_logits(model, x, average="logits"):
    """Logits `(B, C)` of a batch; views `(B, V, ...)` are averaged
    (`average_views`; `average=None` keeps them: `(B, V, C)`).

    The `B * V` views go through the model in one `predict_on_batch` call.
    """
    from keras import ops

    x = np.asarray(x)
    if x.ndim == 6:
        batch, views = x.shape[:2]
        logits = model.predict_on_batch(x.reshape((batch * views,) + x.shape[2:]))
        logits = ops.convert_to_numpy(logits).astype("float32").reshape(batch, views, -1)
        return logits if average is None else average_views(logits, average)
    if x.ndim != 5:
        raise ValueError(f"Expected videos (B, T, H, W, 3) or (B, V, T, H, W, 3), got shape {x.shape}.")
    return ops.convert_to_numpy(model.predict_on_batch(x)).astype("float32")


def classification_metrics(logits, labels, num_classes=None):
    """top-1, top-5, mean class accuracy, per-class accuracy, confusion matrix.

    Ties in the logits go to the lower class index. Classes with no video get
    `None` as their accuracy and are left out of the mean class accuracy.
    """
    logits = np.asarray(logits, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    num_classes = num_classes or logits.shape[1]
    if len(labels) == 0:
        raise ValueError("No videos to evaluate.")
    if logits.ndim != 2 or logits.shape != (len(labels), num_classes):
        raise ValueError(f"Expected logits ({len(labels)}, {num_classes}), got shape {logits.shape}.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"Labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}.")
    order = np.argsort(-logits, axis=1, kind="stable")
    k = min(5, num_classes)
    top1 = order[:, 0] == labels
    top5 = (order[:, :k] == labels[:, None]).any(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype="int64")
    np.add.at(confusion, (labels, order[:, 0]), 1)
    support = confusion.sum(axis=1)
    present = support > 0
    per_class = np.full(num_classes, np.nan)
    per_class[present] = np.diag(confusion)[present] / support[present]
    return {
        "top1": float(top1.mean()),
        "top5": float(top5.mean()),
        "mean_class_accuracy": float(np.nanmean(per_class)),
        "top1_ci95": bootstrap_ci(top1),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "confusion_matrix": confusion.tolist(),
        "num_videos": int(len(labels)),
    }


def bootstrap_ci(correct, resamples=1000, seed=0, level=0.95):
    """`[low, high]`: the percentile bootstrap interval of the mean of
    `correct` (one 0/1 per video): `resamples` resamplings of the videos with
    replacement, drawn with `seed`."""
    correct = np.asarray(correct, dtype="float64").reshape(-1)
    n = len(correct)
    if n == 0:
        raise ValueError("No videos to bootstrap.")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, min(resamples, 2_000_000 // n))  # bounded memory on big test sets
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = correct[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def softmax(logits):
    logits = np.asarray(logits, dtype="float64")
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _is_dataset(data):
    return hasattr(data, "items") and hasattr(data, "class_names") and not callable(data.items)


def _dataset_loader(model, dataset, views, num_clips, num_frames, sampling_rate, image_size,
                    batch_size, loader, workers, on_error):
    from keras_har import data as har_data

    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and num_classes != len(dataset.class_names):
        raise ValueError(
            f"the dataset has {len(dataset.class_names)} classes, the model {num_classes}."
        )
    labels = getattr(model, "labels", None)
    if labels and list(labels) != list(dataset.class_names):
        raise ValueError(
            "the dataset's classes are not the model's (in order): "
            f"{', '.join(dataset.class_names[:3])}... vs {', '.join(list(labels)[:3])}..."
        )
    num_frames, sampling_rate, image_size = clip_settings(model, num_frames, sampling_rate, image_size)
    check_clip_settings(model, num_frames, image_size)
    return har_data.make_loader(
        dataset, training=False, batch_size=batch_size, num_frames=num_frames,
        sampling_rate=sampling_rate, image_size=image_size,
        mean=getattr(model, "image_mean", IMAGENET_MEAN),
        std=getattr(model, "image_std", IMAGENET_STD),
        num_classes=len(dataset.class_names), views=views, num_clips=num_clips,
        loader=loader, workers=workers, on_error=on_error, with_index=True,
    )


def evaluate(model, data, class_names=None, paths=None, progress=True, *, views="single",
             num_clips=None, num_frames=None, sampling_rate=None, image_size=None, batch_size=4,
             loader="grain", workers=0, on_error="skip"):
    """Run `model` over a dataset (or batches) and return metrics plus per-video predictions.

    Args:
        model: a Keras classifier returning logits (a keras-har classifier
            also gives its class names and input normalisation).
        data: a dataset index (`.items`, `.class_names`) or an iterable of
            `(x, y)` / `(x, y, item_index)` batches; `y` one-hot/soft `(B, C)`
            or integer `(B,)`.
        class_names: names of the classes (default: the dataset's, else
            `model.class_names`).
        paths: the video of each sample: indexed by `item_index` when the
            batches carry it, else in batch order (default: the dataset's).
        progress: show a progress bar.
        views: with a dataset: "single" (centre crop), "tta" (= "tta6": left/
            top, centre, right/bottom crops, then the same flipped), "tta3"
            or "official" (`num_clips` evenly spaced clips x 3 crops).
        num_clips: temporal clips for "official" (default 5).
        num_frames, sampling_rate, image_size: clip settings (default: the
            model's frames and input size, stride 2).
        batch_size, loader, workers, on_error: for `keras_har.data.make_loader`.
            Unreadable videos are skipped (`on_error="skip"`) and listed in
            `skipped_videos`, or raise naming the file (`"raise"`).

    Returns:
        dict with top1, top5, mean_class_accuracy, per_class_accuracy,
        confusion_matrix, num_videos, class_names, `predictions` (one dict per
        video: path, label, predicted, correct, top-5 `[name, probability]`)
        and, with a dataset, views, num_views and skipped_videos.
    """
    info = {}
    batches = data
    if _is_dataset(data):
        pipeline_views = loader_views(views)
        if pipeline_views == "all":
            raise ValueError("views='all' is for evaluate_protocols (one metric per protocol).")
        if pipeline_views != "official":
            if num_clips not in (None, 1):
                raise ValueError(f"num_clips is for views='official', not {views!r}.")
            num_clips = 1
        elif num_clips is None:
            num_clips = OFFICIAL_CLIPS
        batches = _dataset_loader(model, data, pipeline_views, num_clips, num_frames, sampling_rate,
                                  image_size, batch_size, loader, workers, on_error)
        class_names = class_names or data.class_names
        paths = paths if paths is not None else [p for p, _ in data.items]
        info = {"views": views, "num_views": num_views(pipeline_views, num_clips)}

    logits, labels, index = collect_logits(
        model, batches, progress, average="softmax" if info.get("views") == "official" else "logits")
    metrics = report(logits, labels, index, class_names or getattr(model, "class_names", None), paths)
    metrics.update(info)
    if hasattr(batches, "bad_videos"):
        metrics["skipped_videos"] = sorted({str(p) for p, *_ in batches.bad_videos()})
    return metrics


def collect_logits(model, batches, progress=True, average="logits"):
    """`(logits, labels, item_index or None)` over all batches, each video once
    (`average=None` keeps the views: logits `(N, V, C)`)."""
    all_logits, all_labels, all_index = [], [], []
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        total = len(batches) if hasattr(batches, "__len__") else None
        iterator = tqdm(batches, total=total, desc="evaluate", unit="batch", leave=False)
    for batch in iterator:
        x, y = batch[0], batch[1]
        all_logits.append(view_logits(model, x, average))
        y = np.asarray(y)
        all_labels.append(y.argmax(axis=1) if y.ndim == 2 else y.astype("int64"))
        if len(batch) > 2:
            all_index.append(np.asarray(batch[2], dtype="int64").reshape(-1))
    if not all_logits:
        raise ValueError("No videos to evaluate.")
    logits = np.concatenate(all_logits)
    labels = np.concatenate(all_labels)
    index = np.concatenate(all_index) if len(all_index) == len(all_logits) else None
    if index is not None:
        # A skipped (unreadable) video is replaced by the next one in the
        # dataset, which then appears twice: keep each video once.
        _, first = np.unique(index, return_index=True)
        keep = np.sort(first)
        logits, labels, index = logits[keep], labels[keep], index[keep]
    return logits, labels, index


def report(logits, labels, index, class_names, paths):
    """Metrics and per-video predictions of `(N, C)` logits."""
    class_names = list(class_names or [])
    num_classes = logits.shape[1]
    if not class_names:
        class_names = [f"class_{i}" for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} model outputs.")
    metrics = classification_metrics(logits, labels, num_classes)
    probs = softmax(logits)
    top = np.argsort(-probs, axis=1, kind="stable")[:, : min(5, num_classes)]
    where = index if index is not None else np.arange(len(labels))
    metrics["predictions"] = [
        {
            "path": str(paths[where[i]]) if paths is not None and where[i] < len(paths) else None,
            "label": class_names[labels[i]],
            "predicted": class_names[top[i, 0]],
            "correct": bool(top[i, 0] == labels[i]),
            "top5": [[class_names[j], float(probs[i, j])] for j in top[i]],
        }
        for i in range(len(labels))
    ]
    metrics["class_names"] = class_names
    return metrics


def protocol_views(num_clips=OFFICIAL_CLIPS):
    """Where each protocol's views sit in a `views="all"` sample: single view,
    the reference protocol's 6 TTA views (3 crops, then flipped), the official clips x 3 crops."""
    return {"single": slice(0, 1), "tta6": slice(1, 7), "tta3": slice(1, 4),
            "official": slice(7, 7 + 3 * num_clips)}


def evaluate_protocols(model, batches, paths=None, class_names=None, tta_views=6,
                       num_clips=OFFICIAL_CLIPS, progress=False):
    """Single view, the reference protocol's TTA (`tta_views` 1, 3 or 6; logits averaged)
    and the official protocol (`num_clips` clips x 3 crops, softmax averaged)
    from batches of `views="all"` samples, `(x, y, item_index)`: each video is
    decoded once and every view goes through the model once.

    Returns `{"single_view": ..., "tta": ..., "official": ...}`, each as `evaluate`'s.
    """
    logits, labels, index = collect_logits(model, batches, progress, average=None)
    where = protocol_views(num_clips)
    if logits.ndim != 3 or logits.shape[1] != where["official"].stop:
        raise ValueError(f"expected {where['official'].stop} views per video (views='all', "
                         f"num_clips={num_clips}), got logits of shape {logits.shape}.")
    names = class_names or getattr(model, "class_names", None)
    single = report(logits[:, 0], labels, index, names, paths)
    if tta_views in (None, 1):
        tta = single
    else:
        tta = report(average_views(logits[:, where[f"tta{tta_views}"]], "logits"), labels, index,
                     names, paths)
    official = report(average_views(logits[:, where["official"]], "softmax"), labels, index,
                      names, paths)
    return {"single_view": single, "tta": tta, "official": official}


def summary(metrics):
    """The short form written to metrics.json: top1, top5, mean_class_accuracy, top1_ci95."""
    return {k: metrics[k] for k in ("top1", "top5", "mean_class_accuracy", "top1_ci95")}


# metrics.json's protocol keys, and the loader views each is computed from.
PROTOCOLS = ("single_view", "tta", "official")


def test_metrics(results, *, tta_views=None, official_clips=None, skipped_videos=None, **context):
    """The one metrics.json schema, written by the recipes' final evaluation
    and by `keras-har evaluate`.

    `results` maps the protocols evaluated (keys of `PROTOCOLS`: "single_view",
    "tta", "official") to `evaluate`'s results. The file holds, for each of
    them, `{top1, top5, mean_class_accuracy, top1_ci95, num_views,
    per_class_accuracy}`; then `protocols` (those evaluated), `tta_views`,
    `official_clips`, `num_videos`, `skipped_videos` (`{"train": [...],
    "test": [...]}`) and the `context` given (e.g. `selection`,
    `num_val_videos`, `clip`, `dataset`, `model`, `backend`)."""
    unknown = set(results) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocols {sorted(unknown)}; they are {', '.join(PROTOCOLS)}.")
    views = {"single_view": 1, "tta": tta_views or 1, "official": 3 * (official_clips or OFFICIAL_CLIPS)}
    metrics = {}
    for name, result in results.items():
        metrics[name] = {
            **summary(result),
            "num_views": views[name],
            "per_class_accuracy": dict(zip(result["class_names"], result["per_class_accuracy"])),
        }
    first = next(iter(results.values()))
    metrics.update({
        "protocols": list(results),
        "tta_views": tta_views if "tta" in results else None,
        "official_clips": official_clips if "official" in results else None,
        "num_videos": first["num_videos"],
        "skipped_videos": skipped_videos if skipped_videos is not None else {"train": [], "test": []},
    })
    metrics.update(context)
    return metrics


"""Evaluation: single view, the seed's 6-view TTA, the official multi-clip protocol.

`evaluate(model, batches)` takes any iterable of `(x, y)` batches where `x` is
either `(B, T, H, W, 3)` (one view per video) or `(B, V, T, H, W, 3)` (V views
per video, e.g. from `keras_har.data.make_loader(..., views="tta6")`). All
views of a batch go through the model in one call; their logits are averaged.
"""

import numpy as np

from keras import ops


def view_logits(model, x):
    """Logits `(B, C)` of a batch; views `(B, V, ...)` are averaged."""
    x = np.asarray(x)
    if x.ndim == 6:
        batch, views = x.shape[:2]
        logits = model.predict_on_batch(x.reshape((batch * views,) + x.shape[2:]))
        logits = ops.convert_to_numpy(logits).astype("float32")
        return logits.reshape(batch, views, -1).mean(axis=1)
    if x.ndim != 5:
        raise ValueError(f"Expected videos (B, T, H, W, 3) or (B, V, T, H, W, 3), got shape {x.shape}.")
    return ops.convert_to_numpy(model.predict_on_batch(x)).astype("float32")


def classification_metrics(logits, labels, num_classes=None):
    """top-1, top-5, mean class accuracy, per-class accuracy, confusion matrix."""
    logits = np.asarray(logits, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    num_classes = num_classes or logits.shape[1]
    if len(labels) == 0:
        raise ValueError("No videos to evaluate.")
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
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "confusion_matrix": confusion.tolist(),
        "num_videos": int(len(labels)),
    }


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def evaluate(model, batches, class_names=None, paths=None, progress=True):
    """Run `model` over `batches` and return metrics plus per-video predictions.

    Args:
        model: a Keras classifier returning logits.
        batches: iterable of `(x, y)`; `y` one-hot/soft `(B, C)` or integer `(B,)`.
        class_names: names of the classes (defaults to `model.class_names`).
        paths: the video of each sample, in batch order, for the predictions.
        progress: show a progress bar.

    Returns:
        dict with top1, top5, mean_class_accuracy, per_class_accuracy,
        confusion_matrix, num_videos and `predictions` (one dict per video:
        path, label, predicted, top-5 names and probabilities).
    """
    class_names = list(class_names or getattr(model, "class_names", []) or [])
    all_logits, all_labels = [], []
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        total = len(batches) if hasattr(batches, "__len__") else None
        iterator = tqdm(batches, total=total, desc="evaluate", unit="batch")
    for batch in iterator:
        x, y = batch[0], batch[1]
        all_logits.append(view_logits(model, x))
        y = np.asarray(y)
        all_labels.append(y.argmax(axis=1) if y.ndim == 2 else y.astype("int64"))
    logits = np.concatenate(all_logits)
    labels = np.concatenate(all_labels)
    num_classes = logits.shape[1]
    if not class_names:
        class_names = [f"class_{i}" for i in range(num_classes)]
    metrics = classification_metrics(logits, labels, num_classes)
    probs = softmax(logits)
    top = np.argsort(-probs, axis=1, kind="stable")[:, : min(5, num_classes)]
    metrics["predictions"] = [
        {
            "path": str(paths[i]) if paths is not None and i < len(paths) else None,
            "label": class_names[labels[i]],
            "predicted": class_names[top[i, 0]],
            "top5": [[class_names[j], float(probs[i, j])] for j in top[i]],
        }
        for i in range(len(labels))
    ]
    metrics["class_names"] = class_names
    return metrics


def summary(metrics):
    """The short form written to metrics.json: top1, top5, mean_class_accuracy."""
    return {k: metrics[k] for k in ("top1", "top5", "mean_class_accuracy")}

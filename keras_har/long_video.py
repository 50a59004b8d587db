"""Labels over time for long videos: one prediction per sliding window.

`label_windows(path, logits_fn, ...)` cuts a video into windows of `window`
seconds every `stride` seconds, takes from each window the clip a test view
takes from a whole video (`num_frames` frames every `sampling_rate`, centred
in the window; the usual crops), and returns the top-k classes of every
window with their start and end times. `write_windows` saves them as CSV or
JSON; `keras_har.plots.plot_timeline` draws the class scores over time.

Imports numpy and keras_har.data only: it runs on exported models too.
"""

import csv
import json
import pathlib

import numpy as np

from keras_har.data import clip_transforms, decoding
from keras_har.data import views as view_protocols
from keras_har.data.normalization import normalize


def window_bounds(duration, window, stride):
    """`[(start, end)]` seconds: every `stride` from 0 while a whole window fits,
    plus one window ending at the end of the video when the last one stops
    short of it; one window `(0, duration)` for a video shorter than `window`."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive seconds, got {window} and {stride}.")
    if duration <= window:
        return [(0.0, float(duration))]
    starts = list(np.arange(0.0, duration - window + 1e-9, stride))
    if starts[-1] + window < duration - 1e-6:
        starts.append(duration - window)
    return [(float(s), float(s + window)) for s in starts]


def window_indices(start, end, fps, frame_count, num_frames, sampling_rate):
    """The frame indices of the clip centred in `[start, end)` seconds."""
    first = int(round(start * fps))
    last = max(first + 1, min(frame_count, int(round(end * fps))))
    (indices,) = decoding.eval_indices(last - first, num_frames, sampling_rate, 1)
    return np.minimum(indices + first, frame_count - 1)


def label_windows(path, logits_fn, *, window, stride, num_frames, sampling_rate, image_size,
                  mean, std, class_names, views="single", top_k=5, batch_size=8, progress=False):
    """Top-k labels of every window of the video at `path`.

    `logits_fn(x)` maps views `(B, V, T, S, S, 3)` to view-averaged logits
    `(B, C)` (`keras_har.evaluation.view_logits` bound to a Keras model, or
    `keras_har.runtimes.view_logits` to an exported one).

    Returns `{"video", "fps", "duration", "window", "stride", "class_names",
    "windows": [{"start", "end", "top": [{"label", "probability"}]}],
    "probabilities": (W, C) array}`.
    """
    crops = view_protocols.CROPS.get(views) if views != "official" else None
    if crops is None:
        raise ValueError(f"windows take views single, tta3 or tta6 (one clip per window), got {views!r}.")
    frame_count, fps, _, _ = decoding.probe(str(path))
    if fps <= 0:
        raise decoding.VideoReadError(f"{path}: the container gives no frame rate; windows need one.")
    duration = frame_count / fps
    bounds = window_bounds(duration, window, stride)
    chunks = range(0, len(bounds), batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=pathlib.Path(path).name, unit="batch", leave=False)
    probabilities = []
    for first in chunks:
        chunk = bounds[first : first + batch_size]
        indices = np.stack([window_indices(s, e, fps, frame_count, num_frames, sampling_rate)
                            for s, e in chunk])
        frames = decoding.read_frames(str(path), indices)  # (B, T, H, W, 3), one decoding pass
        x = np.stack([clip_transforms.multi_view_clip(f, image_size, crops) for f in frames])
        logits = np.asarray(logits_fn(normalize(x, mean, std)), dtype="float64")
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities.append(z / z.sum(axis=1, keepdims=True))
    probabilities = np.concatenate(probabilities)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    windows = [
        {"start": round(s, 3), "end": round(e, 3),
         "top": [{"label": class_names[j], "probability": float(probabilities[i, j])}
                 for j in order[i]]}
        for i, (s, e) in enumerate(bounds)
    ]
    return {"video": str(path), "fps": fps, "duration": duration, "window": window,
            "stride": stride, "views": views, "class_names": list(class_names),
            "windows": windows, "probabilities": probabilities}


def as_json(result):
    """The JSON-ready form of a `label_windows` result (without the full
    probability matrix)."""
    return {k: v for k, v in result.items() if k not in ("probabilities", "class_names")}


def write_windows(results, path):
    """Write `label_windows` results to `path`: `.csv` (one row per window:
    video, start, end, rank, label, probability) or `.json` (a list, one entry
    per video)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([as_json(r) for r in results], indent=2) + "\n")
        return path
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: window labels are written as .csv or .json")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "start", "end", "rank", "label", "probability"])
        for r in results:
            for w in r["windows"]:
                for rank, t in enumerate(w["top"], 1):
                    writer.writerow([r["video"], w["start"], w["end"], rank, t["label"],
                                     f"{t['probability']:.6f}"])
    return path

"""A small synthetic action dataset of real video files, in HMDB51's layout.

Six classes of a shape on a noisy background:

  grow / shrink          a disc whose radius goes r0 -> r1 (grow: r0 < r1)
  move_down / move_up    a square moving from y0 to y1 (down: y0 < y1)
  still_triangle         a triangle jittering in place
  still_cross            a cross jittering in place

`grow`/`shrink` and `move_down`/`move_up` are time reversals of each other:
the endpoints are two independent uniform draws, sorted one way or the other,
and the background noise is independent per frame, so the reversed video of
one class is an equally likely sample of its partner. Any single frame -- and
so any set of frames -- has the same distribution in both classes of a pair:
a model blind to frame order (mean pooling over frames) is at chance within a
pair, while the shape tells the pair and the still classes apart.

Motion is vertical on purpose: the training augmentation and the test views
flip frames horizontally, which would turn a left-to-right clip into a
right-to-left one (the reason VideoMAE drops flips on Something-Something).
"""

import json
import pathlib

import cv2
import numpy as np

from keras_har.data.splits import HMDB51

CLASSES = ("grow", "move_down", "move_up", "shrink", "still_cross", "still_triangle")
REVERSAL_PAIRS = (("grow", "shrink"), ("move_down", "move_up"))
COLORS = ((230, 200, 40), (40, 220, 230), (230, 80, 200), (120, 230, 60))
VERSION = 4


def _background(rng, num_frames, size):
    return rng.integers(0, 40, size=(num_frames, size, size, 3), dtype=np.uint8)


def _spread(draws, min_gap, low, high):
    """Two sorted endpoints at least `min_gap` apart, widened symmetrically about
    their midpoint (so both classes of a pair stay equally likely)."""
    a, b = np.sort(draws)
    if b - a < min_gap:
        mid = np.clip((a + b) / 2, low + min_gap / 2, high - min_gap / 2)
        a, b = mid - min_gap / 2, mid + min_gap / 2
    return a, b


def render(cls, rng, num_frames=24, size=64):
    """RGB uint8 frames `(num_frames, size, size, 3)` of one sample of `cls`."""
    frames = _background(rng, num_frames, size)
    color = COLORS[int(rng.integers(len(COLORS)))]
    t = np.linspace(0.0, 1.0, num_frames)
    if cls in ("grow", "shrink"):
        a, b = _spread(rng.uniform(size * 0.06, size * 0.42, size=2), size * 0.2, size * 0.06, size * 0.42)
        r0, r1 = (a, b) if cls == "grow" else (b, a)
        cy, cx = rng.uniform(size * 0.35, size * 0.65, size=2)
        for i in range(num_frames):
            r = r0 + (r1 - r0) * t[i]
            cv2.circle(frames[i], (int(cx), int(cy)), max(1, int(round(r))), color, -1)
    elif cls in ("move_down", "move_up"):
        side = int(size * 0.22)
        a, b = _spread(rng.uniform(0, size - side, size=2), size * 0.4, 0, size - side)
        y0, y1 = (a, b) if cls == "move_down" else (b, a)
        x = int(rng.uniform(0, size - side))
        for i in range(num_frames):
            y = int(round(y0 + (y1 - y0) * t[i]))
            frames[i, y : y + side, x : x + side] = color
    elif cls in ("still_triangle", "still_cross"):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, size=2)
        half = size * 0.18
        for i in range(num_frames):
            jy, jx = rng.normal(0, 1.0, size=2)
            y, x = cy + jy, cx + jx
            if cls == "still_triangle":
                pts = np.array([[x, y - half], [x - half, y + half], [x + half, y + half]], np.int32)
                cv2.fillPoly(frames[i], [pts], color)
            else:
                w = max(2, int(half / 3))
                cv2.rectangle(frames[i], (int(x - half), int(y - w)), (int(x + half), int(y + w)), color, -1)
                cv2.rectangle(frames[i], (int(x - w), int(y - half)), (int(x + w), int(y + half)), color, -1)
    else:
        raise ValueError(f"Unknown synthetic class {cls!r}; known: {CLASSES}.")
    return frames


def write_video(path, frames, fps=12.0):
    """Write RGB uint8 frames as an MJPG .avi (what OpenCV writes everywhere)."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}.")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def make_synthetic_dataset(root, train_per_class=160, test_per_class=20, num_frames=24,
                           image_size=64, seed=0, classes=CLASSES):
    """Write `root/videos/<class>/*.avi` and HMDB51-style split files in
    `root/splits/<class>_test_split{1,2,3}.txt` (1 = train, 2 = test; the same
    assignment in all three splits). Returns (videos_dir, splits_dir)."""
    root = pathlib.Path(root)
    videos, splits = root / "videos", root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for cls in classes:
        (videos / cls).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(train_per_class + test_per_class):
            name = f"{cls}_{i:03d}.avi"
            write_video(videos / cls / name, render(cls, rng, num_frames, image_size))
            lines.append(f"{name} {1 if i < train_per_class else 2}")
        for k in (1, 2, 3):
            (splits / f"{cls}_test_split{k}.txt").write_text("\n".join(lines) + "\n")
    meta = dict(version=VERSION, train_per_class=train_per_class, test_per_class=test_per_class,
                num_frames=num_frames, image_size=image_size, seed=seed, classes=list(classes),
                reversal_pairs=[list(p) for p in REVERSAL_PAIRS])
    (root / "synthetic.json").write_text(json.dumps(meta, indent=2))
    return videos, splits


def ensure_synthetic_dataset(root, seed=0, **kwargs):
    """The dataset at `root`, generated first if it is missing or differs."""
    root = pathlib.Path(root)
    meta_file = root / "synthetic.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("version") == VERSION and meta.get("seed") == seed and all(
            meta.get(k) == v for k, v in kwargs.items()
        ):
            return root / "videos", root / "splits"
    return make_synthetic_dataset(root, seed=seed, **kwargs)


class SyntheticVideos(HMDB51):
    """The built-in synthetic dataset as an index: generated at `root` on first
    use (`ensure_synthetic_dataset`), read through its HMDB51-style split files."""

    def __init__(self, root, subset="train", seed=0):
        videos, splits = ensure_synthetic_dataset(root, seed=seed)
        super().__init__(videos, splits, split=1, subset=subset)
        self.name = f"synthetic {subset}"


def reversal_pair_accuracy(predictions, class_names):
    """Top-1 on the time-reversal classes and on the rest, from evaluation's
    per-video predictions."""
    paired = {c for pair in REVERSAL_PAIRS for c in pair}
    groups = {"reversal_pairs": [], "other_classes": []}
    for p in predictions:
        key = "reversal_pairs" if p["label"] in paired else "other_classes"
        groups[key].append(p["label"] == p["predicted"])
    return {k: (float(np.mean(v)) if v else None) for k, v in groups.items()}

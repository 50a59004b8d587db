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

The "hard" profile (`--synthetic hard`, `make_synthetic_dataset(...,
profile="hard")`) has ten classes, all in time-reversal pairs (HARD_PAIRS:
grow/shrink, move_down/move_up, stretch/squash (the height of the shape),
fade_in/fade_out, split/merge (two copies moving apart or together)), so only
the order of the frames tells a class from its partner. The shape and colour
are drawn independently of the class; the action fills a random part of the
clip; the camera shakes (a centred random walk of the whole frame); three
distractor shapes drift across a textured background; every frame has its own
Gaussian noise; and the videos are short and of variable length (10-20 frames,
so a clip of 8 frames at stride 2 often runs past the end). Flip-safe: every
motion is vertical or mirror-symmetric.
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
HARD_PAIRS = (("grow", "shrink"), ("move_down", "move_up"), ("stretch", "squash"),
              ("fade_in", "fade_out"), ("split", "merge"))
HARD_CLASSES = tuple(sorted(c for pair in HARD_PAIRS for c in pair))
HARD_VERSION = 1
# Per profile: classes, pairs and the dataset's size and frame counts.
PROFILES = {
    "easy": dict(classes=CLASSES, pairs=REVERSAL_PAIRS, train_per_class=160, test_per_class=20,
                 num_frames=24, image_size=64, version=VERSION),
    "hard": dict(classes=HARD_CLASSES, pairs=HARD_PAIRS, train_per_class=60, test_per_class=30,
                 num_frames=(10, 20), image_size=64, version=HARD_VERSION),
}
HARD_PALETTE = COLORS + ((200, 200, 200), (90, 140, 240))


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


def _hard_background(rng, size):
    """A smooth random texture (a coarse grid of grey-brown values, upsampled)."""
    coarse = rng.integers(10, 90, size=(6, 6, 3)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _draw(frame, kind, cy, cx, half_h, half_w, color, alpha=1.0):
    """A filled disc/ellipse, square/rectangle or triangle blended in with `alpha`."""
    layer = frame.copy()
    center = (int(round(cx)), int(round(cy)))
    hh, hw = max(1, int(round(half_h))), max(1, int(round(half_w)))
    if kind == 0:
        cv2.ellipse(layer, center, (hw, hh), 0, 0, 360, color, -1)
    elif kind == 1:
        cv2.rectangle(layer, (center[0] - hw, center[1] - hh), (center[0] + hw, center[1] + hh), color, -1)
    else:
        pts = np.array([[center[0], center[1] - hh], [center[0] - hw, center[1] + hh],
                        [center[0] + hw, center[1] + hh]], np.int32)
        cv2.fillPoly(layer, [pts], color)
    frame[:] = frame * (1.0 - alpha) + layer * alpha


def render_hard(cls, rng, num_frames=16, size=64):
    """RGB uint8 frames `(num_frames, size, size, 3)` of one sample of a hard-profile class."""
    if cls not in HARD_CLASSES:
        raise ValueError(f"Unknown hard synthetic class {cls!r}; known: {HARD_CLASSES}.")
    background = _hard_background(rng, size)
    t = np.linspace(0.0, 1.0, num_frames)
    start, stop = rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)
    progress = np.clip((t - start) / (stop - start), 0.0, 1.0)
    kind = int(rng.integers(3))
    color = HARD_PALETTE[int(rng.integers(len(HARD_PALETTE)))]
    base = rng.uniform(size * 0.09, size * 0.15)
    cy, cx = rng.uniform(size * 0.3, size * 0.7, size=2)
    pair = next(p for p in HARD_PAIRS if cls in p)
    forward = cls == pair[0]

    def endpoints(low, high, gap):
        a, b = _spread(rng.uniform(low, high, size=2), gap, low, high)
        return (a, b) if forward else (b, a)

    name = pair[0]
    if name == "grow":
        v0, v1 = endpoints(size * 0.05, size * 0.22, size * 0.08)
    elif name == "move_down":
        v0, v1 = endpoints(size * 0.18, size * 0.82, size * 0.25)
    elif name == "stretch":
        v0, v1 = endpoints(0.35, 1.8, 0.7)
    elif name == "fade_in":
        v0, v1 = endpoints(0.15, 1.0, 0.5)
    else:  # split: half the distance between the two copies
        v0, v1 = endpoints(size * 0.04, size * 0.3, size * 0.12)
    distractors = [
        dict(kind=int(rng.integers(3)), color=HARD_PALETTE[int(rng.integers(len(HARD_PALETTE)))],
             half=rng.uniform(size * 0.04, size * 0.09), y=rng.uniform(0, size), x=rng.uniform(0, size),
             vy=rng.normal(0, size * 0.4), vx=rng.normal(0, size * 0.4))
        for _ in range(3)
    ]
    shake = np.cumsum(rng.normal(0, 0.8, size=(num_frames, 2)), axis=0)
    shake -= shake.mean(axis=0)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for i in range(num_frames):
        frame = background.copy()
        for d in distractors:
            _draw(frame, d["kind"], d["y"] + d["vy"] * (t[i] - 0.5), d["x"] + d["vx"] * (t[i] - 0.5),
                  d["half"], d["half"], d["color"])
        v = v0 + (v1 - v0) * progress[i]
        if name == "grow":
            _draw(frame, kind, cy, cx, v, v, color)
        elif name == "move_down":
            _draw(frame, kind, v, cx, base, base, color)
        elif name == "stretch":
            _draw(frame, kind, cy, cx, base * v, base, color)
        elif name == "fade_in":
            _draw(frame, kind, cy, cx, base * 1.3, base * 1.3, color, alpha=v)
        else:
            for side in (-1, 1):
                _draw(frame, kind, cy, size / 2 + side * v, base * 0.8, base * 0.8, color)
        dy, dx = shake[i]
        frame = cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, dy]]), (size, size),
                               borderMode=cv2.BORDER_REFLECT)
        frame += rng.normal(0, 10.0, size=frame.shape).astype(np.float32)
        frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
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


def make_synthetic_dataset(root, train_per_class=None, test_per_class=None, num_frames=None,
                           image_size=None, seed=0, classes=None, profile="easy"):
    """Write `root/videos/<class>/*.avi` and HMDB51-style split files in
    `root/splits/<class>_test_split{1,2,3}.txt` (1 = train, 2 = test; the same
    assignment in all three splits). Unset sizes take the `profile`'s
    ("easy": 6 classes, 160 + 20 videos each of 24 frames; "hard": 10
    classes, 60 + 30 videos each of 10-20 frames; `num_frames` may be a
    `(low, high)` range). Returns (videos_dir, splits_dir)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}.")
    spec = PROFILES[profile]
    train_per_class = spec["train_per_class"] if train_per_class is None else train_per_class
    test_per_class = spec["test_per_class"] if test_per_class is None else test_per_class
    num_frames = spec["num_frames"] if num_frames is None else num_frames
    image_size = spec["image_size"] if image_size is None else image_size
    classes = spec["classes"] if classes is None else classes
    draw = render if profile == "easy" else render_hard
    root = pathlib.Path(root)
    videos, splits = root / "videos", root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for cls in classes:
        (videos / cls).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(train_per_class + test_per_class):
            name = f"{cls}_{i:03d}.avi"
            frames = (int(rng.integers(num_frames[0], num_frames[1] + 1))
                      if isinstance(num_frames, (list, tuple)) else num_frames)
            write_video(videos / cls / name, draw(cls, rng, frames, image_size))
            lines.append(f"{name} {1 if i < train_per_class else 2}")
        for k in (1, 2, 3):
            (splits / f"{cls}_test_split{k}.txt").write_text("\n".join(lines) + "\n")
    frames_meta = list(num_frames) if isinstance(num_frames, (list, tuple)) else num_frames
    meta = dict(version=spec["version"], train_per_class=train_per_class, test_per_class=test_per_class,
                num_frames=frames_meta, image_size=image_size, seed=seed, classes=list(classes),
                reversal_pairs=[list(p) for p in spec["pairs"]], profile=profile)
    (root / "synthetic.json").write_text(json.dumps(meta, indent=2))
    return videos, splits


def ensure_synthetic_dataset(root, seed=0, profile="easy", **kwargs):
    """The dataset at `root`, generated first if it is missing or differs."""
    if profile not in PROFILES:
        raise ValueError(f"--synthetic must be one of {', '.join(PROFILES)}, got {profile!r}.")
    root = pathlib.Path(root)
    meta_file = root / "synthetic.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if (meta.get("version") == PROFILES[profile]["version"] and meta.get("seed") == seed
                and meta.get("profile", "easy") == profile
                and all(meta.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items())):
            return root / "videos", root / "splits"
    return make_synthetic_dataset(root, seed=seed, profile=profile, **kwargs)


class SyntheticVideos(HMDB51):
    """The built-in synthetic dataset as an index: generated at `root` on first
    use (`ensure_synthetic_dataset`), read through its HMDB51-style split files."""

    def __init__(self, root, subset="train", seed=0, profile="easy"):
        videos, splits = ensure_synthetic_dataset(root, seed=seed, profile=profile)
        super().__init__(videos, splits, split=1, subset=subset)
        self.profile = profile
        self.name = f"synthetic{'' if profile == 'easy' else ' ' + profile} {subset}"


def reversal_pair_accuracy(predictions, class_names):
    """Top-1 on the time-reversal classes and on the rest, from evaluation's
    per-video predictions."""
    pairs = HARD_PAIRS if set(class_names) == set(HARD_CLASSES) else REVERSAL_PAIRS
    paired = {c for pair in pairs for c in pair}
    groups = {"reversal_pairs": [], "other_classes": []}
    for p in predictions:
        key = "reversal_pairs" if p["label"] in paired else "other_classes"
        groups[key].append(p["label"] == p["predicted"])
    return {k: (float(np.mean(v)) if v else None) for k, v in groups.items()}

"""Spatial transforms of a clip `(T, H, W, 3)` uint8, in numpy and OpenCV.

Training (VideoMAE): resize the short edge to `short_side(image_size)` (256 for
224), RandomResizedCrop(scale 0.8-1.0, ratio 3/4-4/3) to `image_size`, flip with
p=0.5 -- the box and the flip drawn ONCE per clip and applied to every frame.
The box is mapped back to the original frame, so each frame is resized once,
from the crop straight to the output size.

Evaluation: short edge to `short_side(image_size)`, centre crop. Multi-view
test: short edge to `image_size` and 3 crops along the long side (left/top,
centre, right/bottom), each with and without a flip -- the reference protocol's 6 views.

`per_frame_random_crops` is the reference baseline's transform (each frame its own
crop and flip), kept for the ablation.
"""

import math

import cv2
import numpy as np


def short_side(image_size):
    """Short-edge size before cropping: 256 for 224, scaled for other sizes."""
    return int(round(image_size * 256 / 224))


def resize_crop(frames, box, size, flip=False):
    """Crop `box` = (y, x, h, w) from every frame, resize to `size` x `size`."""
    y, x, h, w = (int(round(v)) for v in box)
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        crop = frame[y : y + h, x : x + w]
        interp = cv2.INTER_AREA if h > size * 1.5 else cv2.INTER_LINEAR
        out[i] = cv2.resize(crop, (size, size), interpolation=interp)
    if flip:
        out = out[:, :, ::-1]
    return out


def random_resized_crop_box(height, width, rng, scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop box (y, x, h, w) for a (height, width) image."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y = int(rng.integers(0, height - h + 1))
            x = int(rng.integers(0, width - w + 1))
            return y, x, h, w
    # Fallback: the central crop with the ratio clamped into range.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _scale_box(box, factor):
    return tuple(v * factor for v in box)


def train_clip(frames, image_size, rng, scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.5):
    """The clip-consistent training transform; returns uint8 (T, S, S, 3)."""
    height, width = frames.shape[1:3]
    s = short_side(image_size) / min(height, width)
    # The box in the short-edge-resized frame, mapped back to the original.
    rh, rw = int(round(height * s)), int(round(width * s))
    box = random_resized_crop_box(rh, rw, rng, scale, ratio)
    flip = rng.random() < flip_prob
    return resize_crop(frames, _scale_box(box, 1 / s), image_size, flip)


def per_frame_random_crops(frames, image_size, rng, scale=(0.8, 1.0), flip_prob=0.5):
    """The reference baseline's per-frame augmentation: every frame draws its own
    square crop of scale 0.8-1.0 of the short edge and its own flip."""
    height, width = frames.shape[1:3]
    out = np.empty((len(frames), image_size, image_size, 3), dtype=np.uint8)
    for i in range(len(frames)):
        side = int(round(min(height, width) * rng.uniform(*scale)))
        y = int(rng.integers(0, height - side + 1))
        x = int(rng.integers(0, width - side + 1))
        out[i] = resize_crop(frames[i : i + 1], (y, x, side, side), image_size, rng.random() < flip_prob)[0]
    return out


def center_clip(frames, image_size):
    """Short edge to `short_side(image_size)`, then the centre `image_size` crop."""
    height, width = frames.shape[1:3]
    side = min(height, width) * image_size / short_side(image_size)
    box = ((height - side) / 2, (width - side) / 2, side, side)
    return resize_crop(frames, box, image_size)


def three_crop_boxes(height, width):
    """Square boxes of the short edge at the start, centre and end of the long side."""
    side = min(height, width)
    if width >= height:  # landscape: left, centre, right
        return [(0, x, side, side) for x in (0, (width - side) // 2, width - side)]
    return [(y, 0, side, side) for y in (0, (height - side) // 2, height - side)]


def multi_view_clip(frames, image_size, num_views=6):
    """The test views `(V, T, S, S, 3)` in the order: left/top, centre,
    right/bottom (no flip), then the same three flipped. `num_views` 3 keeps the
    unflipped crops only; 1 is the centre crop of `center_clip`."""
    if num_views == 1:
        return center_clip(frames, image_size)[None]
    height, width = frames.shape[1:3]
    crops = [resize_crop(frames, box, image_size) for box in three_crop_boxes(height, width)]
    if num_views == 3:
        return np.stack(crops)
    if num_views != 6:
        raise ValueError(f"num_views must be 1, 3 or 6, got {num_views}.")
    return np.stack(crops + [c[:, :, ::-1] for c in crops])


MULTI_SCALES = (1.0, 0.875, 0.75, 0.66)


def multi_scale_crop_box(height, width, image_size, rng, scales=MULTI_SCALES, max_distort=1):
    """VideoMAE pre-training's `GroupMultiScaleCrop` box (y, x, h, w): side
    lengths from `scales` x the short edge (snapped to `image_size` within 3
    pixels), height and width at most `max_distort` scale steps apart, placed at
    one of the 13 fixed offsets (corners, centre, edge midpoints, quarter
    points) of TSN's `more_fix_crop`."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    sizes = [image_size if abs(s - image_size) < 3 else s for s in sizes]
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_distort]
    h, w = pairs[int(rng.integers(len(pairs)))]
    h_step, w_step = (height - h) // 4, (width - w) // 4
    offsets = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
    oy, ox = offsets[int(rng.integers(len(offsets)))]
    return oy * h_step, ox * w_step, h, w


def pretrain_clip(frames, image_size, rng, flip_prob=0.5, scales=MULTI_SCALES):
    """VideoMAE pre-training's clip transform: one multi-scale crop (and flip
    with `flip_prob`) for every frame, resized to `image_size`; uint8 (T, S, S, 3)."""
    height, width = frames.shape[1:3]
    box = multi_scale_crop_box(height, width, image_size, rng, scales)
    return resize_crop(frames, box, image_size, rng.random() < flip_prob)

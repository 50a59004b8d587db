"""An OpenCV video decoder (seeks by frame number), kept here only so that
`loader_speed.py` can time it beside the library's frame-exact one. Not frame-exact: the
frame count is the container's, and `CAP_PROP_POS_FRAMES` seeks land one frame
early on XviD AVIs with audio (see keras_har.data.decoding for the reader the
library uses).

`use_opencv(loader)` makes a training loader's workers read clips this way.
"""

import os

import cv2
import numpy as np

from keras_har.data import decoding
from keras_har.data.pipeline import ClipSampler

SEEK_THRESHOLD = 32  # seek (instead of grabbing) to a first frame past this


def _open(path):
    if not os.path.isfile(path):
        raise decoding.VideoReadError(f"{path}: no such file.")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise decoding.VideoReadError(f"{path}: OpenCV cannot open it (corrupt or unsupported).")
    return cap


def _count_by_grabbing(path):
    cap, count = _open(path), 0
    while cap.grab():
        count += 1
    cap.release()
    return count


def _decode(path, wanted, seek=True, cap=None):
    """`({index: RGB}, end)`: one forward pass to the last wanted index, after a
    CAP_PROP_POS_FRAMES seek when the first one is far in."""
    cap = cap if cap is not None else _open(path)
    frames = {}
    position, end = 0, None
    try:
        first = int(wanted[0])
        if seek and first > SEEK_THRESHOLD and cap.set(cv2.CAP_PROP_POS_FRAMES, first):
            if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == first:
                position = first
            else:  # inexact seek: start over sequentially
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        for target in wanted:
            target = int(target)
            while position < target and cap.grab():
                position += 1
            ok = position == target and cap.grab()
            frame = cap.retrieve()[1] if ok else None
            if frame is None:
                end = position
                break
            position += 1
            frames[target] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    if seek and not frames and position > 0:  # sought past the real end
        return _decode(path, wanted, seek=False)
    return frames, end


def read_clip(path, choose_indices):
    """An OpenCV `read_clip`: the container's frame count, re-sampled when the
    video ends early."""
    cap = _open(path)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if count <= 0:
        cap.release()
        cap, count = None, _count_by_grabbing(path)
    indices = np.asarray(choose_indices(count), dtype="int64")
    frames, end = _decode(path, np.unique(indices), cap=cap)
    if end is not None and 0 < end < count:
        indices = np.asarray(choose_indices(end), dtype="int64")
        frames, _ = _decode(path, np.unique(indices))
    return decoding._gather(path, frames, indices)


class OpenCVClipSampler(ClipSampler):
    """A training `ClipSampler` that reads clips with the OpenCV decoder above.
    For grain worker processes, which run one sample at a time."""

    def load(self, index, epoch):
        library_read_clip = decoding.read_clip
        decoding.read_clip = read_clip
        try:
            return super().load(index, epoch)
        finally:
            decoding.read_clip = library_read_clip


def use_opencv(loader):
    """Make `loader` (grain, training) read clips with the OpenCV decoder."""
    sampler = OpenCVClipSampler.__new__(OpenCVClipSampler)
    sampler.__dict__.update(loader.sampler.__dict__)
    loader.sampler = sampler
    return loader

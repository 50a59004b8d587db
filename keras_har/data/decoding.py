"""Reading clips from video files with OpenCV, without decoding what is not used.

Frame sampling follows VideoMAE fine-tuning: `num_frames` frames `sampling_rate`
apart, from a random start in training and from `num_clips` evenly spaced
starts at test time; a video shorter than the span is padded with its last
frame (as the official loader does). Only the frames up to the last one
needed are decoded, and only the needed ones are converted.
"""

import os

import cv2
import numpy as np


SEEK_THRESHOLD = 32  # seek (instead of grabbing) to a first frame past this


class VideoReadError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""


def probe(path):
    """`(frame_count, fps, height, width)` of a video.

    The count comes from the container, which may over-report it (see
    `read_clip`); when the container gives none (<= 0) the frames are counted
    by grabbing them. Raises `VideoReadError` naming the file when it cannot be
    opened or has no frame.
    """
    cap = _open(path)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        if count <= 0:
            count = 0
            while cap.grab():
                count += 1
    finally:
        cap.release()
    if count <= 0:
        raise VideoReadError(f"{path}: no frames.")
    return count, fps, height, width


def clip_span(num_frames, sampling_rate):
    return (num_frames - 1) * sampling_rate + 1


def clip_indices(start, num_frames, sampling_rate, video_frames):
    """Indices of one clip from `start`; past the end they repeat the last frame."""
    idx = start + np.arange(num_frames) * sampling_rate
    return np.minimum(idx, video_frames - 1).astype("int64")


def train_indices(video_frames, num_frames, sampling_rate, rng):
    """A clip from a random start (uniform over the starts that fit)."""
    latest = max(0, video_frames - clip_span(num_frames, sampling_rate))
    return clip_indices(int(rng.integers(0, latest + 1)), num_frames, sampling_rate, video_frames)


def eval_indices(video_frames, num_frames, sampling_rate, num_clips=1):
    """`num_clips` clips with evenly spaced starts, shape (num_clips, num_frames);
    one clip is centred in the video."""
    latest = max(0, video_frames - clip_span(num_frames, sampling_rate))
    if num_clips == 1:
        starts = [latest // 2]
    else:
        starts = np.round(np.linspace(0, latest, num_clips)).astype(int)
    return np.stack([clip_indices(s, num_frames, sampling_rate, video_frames) for s in starts])


def _open(path):
    if not os.path.isfile(path):
        raise VideoReadError(f"{path}: no such file.")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoReadError(f"{path}: OpenCV cannot open it (corrupt or unsupported).")
    return cap


def _decode(path, wanted, seek=True, cap=None):
    """Decode the sorted unique frame indices `wanted` (from `cap` when given:
    a capture of `path` still at frame 0, released here).

    Returns `({index: RGB frame}, end)` where `end` is the number of frames
    the video really has when it ended before the last wanted index, else None.
    Frames are read in one forward pass that stops at the last index needed:
    `grab()` skips the frames in between without converting them; a first index
    far into the video is reached by seeking.
    """
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


def _gather(path, frames, indices):
    """`{index: frame}` -> frames at `indices` (the last decoded one standing in
    for those past the end), shape `indices.shape + (H, W, 3)`."""
    if not frames:
        raise VideoReadError(f"{path}: no frame could be decoded (corrupt or empty video).")
    last = frames[max(frames)]
    out = np.stack([frames.get(int(i), last) for i in indices.ravel()])
    return out.reshape(indices.shape + out.shape[1:])


def read_frames(path, indices):
    """Decode the frames at `indices` (any order, repeats allowed) as RGB uint8
    `indices.shape + (H, W, 3)`.

    When the video ends before an index, the last decoded frame stands in for
    the missing ones (use `read_clip` to re-sample from the true length).
    """
    indices = np.asarray(indices, dtype="int64")
    frames, _ = _decode(path, np.unique(indices))
    return _gather(path, frames, indices)


def read_clip(path, choose_indices):
    """Frames at `choose_indices(frame_count)` (an int array of any shape),
    as RGB uint8 `indices.shape + (H, W, 3)`.

    Containers may over-report their frame count (a truncated AVI keeps its
    header). When the video ends before an index, the indices are chosen again
    from the number of frames it really has, and decoded again.
    """
    cap = _open(path)  # one open for the frame count and the frames
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if count <= 0:  # the container does not say: count by grabbing
        cap.release()
        cap, count = None, probe(str(path))[0]
    indices = np.asarray(choose_indices(count), dtype="int64")
    frames, end = _decode(path, np.unique(indices), cap=cap)
    if end is not None and 0 < end < count:
        indices = np.asarray(choose_indices(end), dtype="int64")
        frames, _ = _decode(path, np.unique(indices))
    return _gather(path, frames, indices)

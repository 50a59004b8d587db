"""Reading clips from video files, frame-exact, with FFmpeg's libraries (PyAV).

Frame `i` of a video is the `i`-th frame FFmpeg presents (what
`ffmpeg -i VIDEO -fps_mode passthrough -f rawvideo -` writes): edit lists are
honoured (pre-roll frames of an MP4 cut without re-encoding are hidden), empty
AVI chunks and timestamp gaps are not frames, B-frames are reordered, and a
rotation tag turns the frames as FFmpeg's auto-rotation does.

How a clip is read: the demuxed packets of the video stream give an index of
presentation timestamps (one per presented frame, sorted) and of keyframes,
without decoding anything. Reading frames then seeks to the last keyframe at or
before the first wanted frame and decodes forward, matching every decoded
frame to the index by its exact timestamp; only the wanted frames are
converted to RGB. A file whose timestamps cannot be trusted (missing or
repeated timestamps, a packet that does not decode, a seek that lands past
its target) is read from its first frame instead, counting decoded frames.

Frame sampling follows VideoMAE fine-tuning: `num_frames` frames `sampling_rate`
apart, from a random start in training and from `num_clips` evenly spaced
starts at test time; a video shorter than the span is padded with its last
frame (as the official loader does).
"""

import collections
import contextlib
import os
import threading

import numpy as np


class VideoReadError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""

    user_error = True  # keras_har.errors: one line, exit status 2


# Decoder threads: 0 = one per CPU, for frames at least THREADED_PIXELS large
# (smaller ones decode on one thread).
THREADED_PIXELS = 640 * 360
_settings = {"threads": 0}
INDEX_CACHE_SIZE = 4096
_index_cache = collections.OrderedDict()
_local = threading.local()  # a colour converter per thread (it keeps its swscale context)


def set_threads(count):
    """Decoder threads per video in this process: 0 = one per CPU (the default;
    used for frames of 640x360 and more), 1 = none (what each loader worker
    uses when the workers already take every core)."""
    if int(count) < 0:
        raise ValueError(f"threads must be >= 0, got {count}.")
    _settings["threads"] = int(count)


def _name(path):
    """The file's name for a message: printable even when its bytes are not UTF-8."""
    name = os.fsdecode(path)
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


class _Index:
    """The presented frames of a video, from its demuxed packets.

    `pts`: sorted presentation timestamps, one per presented frame (None when
    the file's timestamps cannot be trusted: then frames are counted by
    decoding from the start). `keyframes`: `(pts, seek timestamp)` of every
    keyframe, sorted by pts.
    """

    def __init__(self, pts, keyframes, count, fps, height, width):
        self.pts = pts
        self.keyframes = keyframes
        self.count = count
        self.fps = fps
        self.height = height
        self.width = width

    def seek_target(self, first):
        """The seek timestamp of the last keyframe at or before frame `first`,
        or None to decode from the start."""
        if self.pts is None or not self.keyframes:
            return None
        target = self.pts[first]
        best = None
        for key_pts, seek_ts in self.keyframes:
            if key_pts > target:
                break
            best = seek_ts
        return best


def _open(path):
    import av

    name = _name(path)
    if not os.path.isfile(path):
        raise VideoReadError(f"{name}: no such file.")
    try:
        container = av.open(os.fsdecode(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeError, ValueError) as e:
        raise VideoReadError(f"{name}: FFmpeg cannot open it ({_reason(e)}).") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{name}: no video stream.")
    stream = container.streams.video[0]
    context = stream.codec_context
    threads = _settings["threads"]
    if threads != 1 and (context.width or 0) * (context.height or 0) >= THREADED_PIXELS:
        context.thread_type = "AUTO"
        context.thread_count = threads
    else:
        context.thread_count = 1
    return container, stream


@contextlib.contextmanager
def _naming(path):
    """FFmpeg's errors (and PyAV's ValueErrors) as `VideoReadError` naming the file."""
    import av

    try:
        yield
    except (av.FFmpegError, ValueError) as e:
        raise VideoReadError(f"{_name(path)}: {_reason(e)}") from None


def _reason(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _packets(container, stream):
    """The stream's non-empty packets in decode order (FFmpeg skips empty
    ones); a read error ends the stream, as FFmpeg stops at a truncated file's
    end. Packets an edit list hides are kept: the decoder needs them, and drops
    their frames itself."""
    import av

    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except (StopIteration, av.FFmpegError, OSError):
            return
        if packet.size > 0:
            yield packet


def _build_index(path, container, stream):
    pts, keyframes, trusted = [], [], True
    for packet in _packets(container, stream):
        if packet.is_keyframe:
            keyframes.append((packet.pts, packet.dts if packet.dts is not None else packet.pts))
        if packet.is_discard:
            continue
        if packet.pts is None:
            trusted = False
        pts.append(packet.pts)
    if not pts:
        raise VideoReadError(f"{_name(path)}: no frames.")
    count = len(pts)
    if trusted:
        pts = np.sort(np.asarray(pts, dtype="int64"))
        trusted = bool(np.all(np.diff(pts) > 0)) and all(k is not None for k, _ in keyframes)
    keyframes = sorted(keyframes) if trusted else []
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    context = stream.codec_context
    return _Index(pts if trusted else None, keyframes, count, float(rate or 0.0),
                  int(context.height or 0), int(context.width or 0))


def _index_key(path):
    try:
        st = os.stat(path)
    except OSError:
        raise VideoReadError(f"{_name(path)}: no such file.") from None
    return os.fsdecode(path), st.st_size, st.st_mtime_ns


def _index(path, container=None, stream=None):
    """The cached index of `path` (keyed by its size and modification time)."""
    key = _index_key(path)
    index = _index_cache.get(key)
    if index is not None:
        _index_cache.move_to_end(key)
        return index
    own = container is None
    if own:
        container, stream = _open(path)
    try:
        index = _build_index(path, container, stream)
    finally:
        if own:
            container.close()
    _index_cache[key] = index
    while len(_index_cache) > INDEX_CACHE_SIZE:
        _index_cache.popitem(last=False)
    return index


def _quarter_turns(frame):
    return int(round((frame.rotation or 0) / 90.0)) % 4


def _rgb(frame, size=None):
    """An RGB uint8 array of a decoded frame, turned as its rotation tag says
    (as FFmpeg's auto-rotation), resized to `size` = (height, width) of the
    turned frame when given (area interpolation, in the same swscale pass as
    the colour conversion)."""
    import av

    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = av.video.reformatter.VideoReformatter()
    turns = _quarter_turns(frame)
    if size is None:
        image = reformatter.reformat(frame, format="rgb24").to_ndarray()
    else:
        height, width = size[::-1] if turns % 2 else size
        image = reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                     interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _decoded(container, stream):
    """Decoded frames in presentation order; a packet that does not decode is
    skipped (as FFmpeg does) and noted in `errors`."""
    import av

    errors = []
    context = stream.codec_context

    def frames():
        for packet in _packets(container, stream):
            try:
                yield from context.decode(packet)
            except av.FFmpegError:
                errors.append(packet.pts)
        try:
            yield from context.decode(None)
        except av.FFmpegError:
            errors.append(None)

    return frames(), errors


def _decode_by_pts(container, stream, index, wanted, fresh):
    """`{frame index: RGB}` for the sorted unique `wanted` indices (all below
    `index.count`), by seeking and matching timestamps; None when the
    timestamps do not lead to every wanted frame."""
    import av

    first, last = int(index.pts[wanted[0]]), int(index.pts[wanted[-1]])
    by_pts = {int(index.pts[i]): int(i) for i in wanted}
    seek = index.seek_target(int(wanted[0]))
    if seek is None:
        return None
    if not (fresh and seek == index.keyframes[0][1]):  # a fresh file starts there
        try:
            container.seek(seek, backward=True, any_frame=False, stream=stream)
        except av.FFmpegError:
            return None
        stream.codec_context.flush_buffers()
    frames, errors = _decoded(container, stream)
    out = {}
    for n, frame in enumerate(frames):
        if frame.pts is None or (n == 0 and frame.pts > first):
            return None  # no timestamp, or the seek landed past the first wanted frame
        i = by_pts.get(int(frame.pts))
        if i is not None:
            out[i] = _rgb(frame)
        if frame.pts >= last:
            break
    if errors or len(out) != len(by_pts):
        return None
    return out


def _decode_counting(path, wanted):
    """`({index: RGB}, end)` by counting the frames decoded from the start of a
    fresh open of `path`; `end` is the number of frames the video has when it
    ended before the last wanted index, else None."""
    container, stream = _open(path)
    try:
        frames, _ = _decoded(container, stream)
        wanted_set = {int(i) for i in wanted}
        last = int(wanted[-1])
        out, position, frame = {}, -1, None
        for position, frame in enumerate(frames):
            if position in wanted_set:
                out[position] = _rgb(frame)
            if position >= last:
                return out, None
        if frame is not None and position not in out:  # the stand-in past the end
            out[position] = _rgb(frame)
        return out, position + 1
    finally:
        container.close()


def _decode_with(path, choose):
    """Open `path` once: index it, choose the indices from its frame count,
    decode them. Returns `(indices, {index: RGB}, end, count)` where `end` is
    the number of frames the video has when it ended before the last chosen
    index (else None).

    A file whose timestamps do not lead to the wanted frames is marked in the
    index cache and read by counting frames from its start from then on; the
    count found by decoding to its end replaces the packets' count.
    """
    container, stream = _open(path)
    try:
        fresh = _index_key(path) in _index_cache
        with _naming(path):
            index = _index(path, container, stream)
        indices = np.asarray(choose(index.count), dtype="int64")
        wanted = np.unique(indices)
        if wanted.size and wanted[0] < 0:
            raise VideoReadError(f"{_name(path)}: negative frame index {int(wanted[0])}.")
        if wanted.size == 0:
            return indices, {}, None, index.count
        # past the end: the last frame stands in (decoded as one of the wanted)
        end = index.count if wanted[-1] >= index.count else None
        present = np.unique(np.minimum(wanted, index.count - 1))
        if index.pts is not None:
            with _naming(path):
                frames = _decode_by_pts(container, stream, index, present, fresh)
            if frames is not None:
                return indices, frames, end, index.count
            index.pts = None
    finally:
        container.close()
    with _naming(path):
        frames, end = _decode_counting(path, wanted)
    if end is not None:
        index.count = end
    return indices, frames, end, index.count


def probe(path):
    """`(frame_count, fps, height, width)` of a video: the number of frames
    FFmpeg presents, the average frame rate, and the size of the presented
    (rotated) frames.

    Raises `VideoReadError` naming the file when it cannot be opened or has
    no frame.
    """
    index = _index(path)
    frames = iter_frames(path)
    try:
        first = next(frames, None)
    finally:
        frames.close()
    height, width = first.shape[:2] if first is not None else (index.height, index.width)
    return index.count, index.fps, height, width


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


def _gather(path, frames, indices):
    """`{index: frame}` -> frames at `indices` (the last decoded one standing in
    for those past the end), shape `indices.shape + (H, W, 3)`."""
    if not frames:
        raise VideoReadError(f"{_name(path)}: no frame could be decoded (corrupt or empty video).")
    last = frames[max(frames)]
    out = np.stack([frames.get(int(i), last) for i in indices.ravel()])
    return out.reshape(indices.shape + out.shape[1:])


def read_frames(path, indices):
    """Decode the frames at `indices` (any order, repeats allowed) as RGB uint8
    `indices.shape + (H, W, 3)`; frame `i` is the `i`-th frame FFmpeg presents.

    When the video ends before an index, the last decoded frame stands in for
    the missing ones (use `read_clip` to re-sample from the true length).
    """
    indices = np.asarray(indices, dtype="int64")
    _, frames, _, _ = _decode_with(path, lambda count: indices)
    return _gather(path, frames, indices)


def iter_frames(path, size=None):
    """Every frame FFmpeg presents, in order, as RGB uint8 `(H, W, 3)` arrays
    (resized to `size` = (height, width) when given). Raises `VideoReadError`
    naming the file when it cannot be opened."""
    container, stream = _open(path)
    try:
        with _naming(path):
            frames, _ = _decoded(container, stream)
            for frame in frames:
                yield _rgb(frame, size)
    finally:
        container.close()


def read_clip(path, choose_indices):
    """Frames at `choose_indices(frame_count)` (an int array of any shape),
    as RGB uint8 `indices.shape + (H, W, 3)`, with one open of the file.

    When the video ends before an index (a damaged file presents fewer frames
    than its packets promise), the indices are chosen again from the number of
    frames it really has, and decoded again.
    """
    indices, frames, end, count = _decode_with(path, choose_indices)
    if end is not None and 0 < end < count:
        indices, frames, _, _ = _decode_with(path, lambda _: np.asarray(choose_indices(end)))
    return _gather(path, frames, indices)

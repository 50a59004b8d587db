"""Frame-exact decoding, checked against FFmpeg's own decode of real encodings.

The FFmpeg binary of imageio-ffmpeg encodes, once per module, frames that show
their own index (see ffmpeg_oracle.py) with the encoders and containers real
datasets use; the oracle is `ffmpeg -i FILE -fps_mode passthrough -f rawvideo`
(every frame FFmpeg presents) and the index each frame shows. Every frame a
training clip (any start), the centred evaluation clip and the multi-clip test
views ask for must come back as FFmpeg's frame at that index, and `probe` must
count the frames FFmpeg presents.
"""

import os
import shutil

import numpy as np
import pytest
from ffmpeg_oracle import HEIGHT, WIDTH, encode, ffmpeg, ffmpeg_exe, ffmpeg_frames, frame_codes

from keras_har.data import decoding
from keras_har.data.decoding import VideoReadError, probe, read_clip, read_frames

NUM_FRAMES, SAMPLING_RATE = 16, 2  # the recipes' clips
XVID = ["-c:v", "mpeg4", "-vtag", "xvid", "-q:v", "4"]
H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast"]


def _matrix(exe, root):
    """{name: (path, (height, width) of the presented frames)}."""
    v = {}

    def add(name, n, fps, args, size=(WIDTH, HEIGHT), **kw):
        v[name] = (encode(exe, root / name, n, fps, args, size=size, **kw), size[::-1])

    add("xvid_mp3_25fps.avi", 100, 25, XVID, audio=True)  # HMDB51 / UCF101
    add("xvid_mp3_30fps.avi", 90, 30, XVID, audio=True)
    add("xvid_bframes.avi", 100, 25, XVID + ["-bf", "2"], audio=True)
    add("h264_bframes.mp4", 120, 25, H264 + ["-bf", "3", "-g", "50"])
    # an MP4 cut without re-encoding: an edit list hides the GOP's pre-roll
    v["h264_trim.mp4"] = (root / "h264_trim.mp4", (HEIGHT, WIDTH))
    ffmpeg(exe, "-ss", "1.3", "-i", v["h264_bframes.mp4"][0], "-t", "3", "-c", "copy", v["h264_trim.mp4"][0])
    add("h264_vfr.mp4", 60, 25, ["-vf", "setpts=(N+floor(N/3))/(25*TB)", "-fps_mode", "vfr"] + H264)
    v["h264_rotated.mp4"] = (root / "h264_rotated.mp4", (WIDTH, HEIGHT))
    ffmpeg(exe, "-display_rotation", "90", "-i", v["h264_bframes.mp4"][0], "-c", "copy",
           v["h264_rotated.mp4"][0])
    add("hevc.mp4", 60, 25, ["-c:v", "libx265", "-x265-params", "log-level=error", "-tag:v", "hvc1",
                             "-pix_fmt", "yuv420p"])
    add("vp9.webm", 60, 25, ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"])
    add("h264_10bit.mp4", 60, 25, ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"])
    add("h264_5_frames.mp4", 5, 25, H264)
    data = v["xvid_mp3_25fps.avi"][0].read_bytes()
    (root / "xvid_truncated.avi").write_bytes(data[: len(data) // 2])
    v["xvid_truncated.avi"] = (root / "xvid_truncated.avi", (HEIGHT, WIDTH))
    # large enough for the threaded decoder
    add("h264_640x360.mp4", 24, 25, H264 + ["-bf", "3"], size=(640, 360))
    return v


MATRIX = ["xvid_mp3_25fps.avi", "xvid_mp3_30fps.avi", "xvid_bframes.avi", "h264_bframes.mp4",
          "h264_trim.mp4", "h264_vfr.mp4", "h264_rotated.mp4", "hevc.mp4", "vp9.webm",
          "h264_10bit.mp4", "h264_5_frames.mp4", "xvid_truncated.avi"]


@pytest.fixture(scope="module")
def exe():
    return ffmpeg_exe()


@pytest.fixture(scope="module")
def videos(exe, tmp_path_factory):
    """Every file of the matrix with FFmpeg's frames of it: {name: (path, frames)}."""
    root = tmp_path_factory.mktemp("ffmpeg_matrix")
    return {name: (path, ffmpeg_frames(exe, path, *size)) for name, (path, size) in _matrix(exe, root).items()}


def _assert_ffmpegs_frames(got, oracle, indices, name):
    """`got[k]` is FFmpeg's frame `indices[k]`: the same index shown, and the same pixels."""
    indices = np.asarray(indices).ravel()
    got = got.reshape((-1,) + got.shape[-3:])
    np.testing.assert_array_equal(frame_codes(got), frame_codes(oracle[indices]),
                                  err_msg=f"{name}: wrong frames at {indices.tolist()}")
    diff = np.abs(got.astype(np.int16) - oracle[indices].astype(np.int16)).mean(axis=(1, 2, 3))
    assert diff.max() <= 1.0, f"{name}: pixels differ from FFmpeg's by {diff.max():.2f} on average"


@pytest.mark.parametrize("name", MATRIX)
def test_probe_counts_the_frames_ffmpeg_presents(videos, name):
    path, oracle = videos[name]
    codes = frame_codes(oracle)
    assert len(oracle) > 0 and np.all(np.diff(codes) == 1), f"{name}: the oracle itself: {codes}"
    count, fps, height, width = probe(str(path))
    assert count == len(oracle)
    assert (height, width) == oracle.shape[1:3]
    assert fps > 0
    if name == "h264_trim.mp4":  # the pre-roll before 1.3 s is not presented
        assert codes[0] in (32, 33) and 75 <= count < 120 - codes[0]
    if name == "xvid_truncated.avi":
        assert count < 100


@pytest.mark.parametrize("name", MATRIX)
def test_every_clip_frame_is_ffmpegs_frame(videos, name):
    path, oracle = videos[name]
    count = probe(str(path))[0]
    span = decoding.clip_span(NUM_FRAMES, SAMPLING_RATE)
    clips = [decoding.clip_indices(start, NUM_FRAMES, SAMPLING_RATE, count)  # every training start
             for start in range(max(0, count - span) + 1)]
    clips += [decoding.eval_indices(count, NUM_FRAMES, SAMPLING_RATE, 1),  # centred clip, TTA views
              decoding.eval_indices(count, NUM_FRAMES, SAMPLING_RATE, 5)]  # the official protocol
    for indices in clips:
        got = read_clip(str(path), lambda n, indices=indices: indices)
        assert got.shape == indices.shape + oracle.shape[1:]
        _assert_ffmpegs_frames(got, oracle, indices, name)


@pytest.mark.parametrize("name", MATRIX)
def test_a_seek_gives_the_frame_decoding_from_the_start_gives(videos, name):
    """The issue's reproduction: `[i]` alone (a seek) and `[0, i]` (no seek)."""
    path, oracle = videos[name]
    count = len(oracle)
    for i in sorted({count // 2, count - 1, min(count - 1, 40)}):
        alone, with_first = read_frames(str(path), [i])[0], read_frames(str(path), [0, i])[1]
        np.testing.assert_array_equal(alone, with_first)
        _assert_ffmpegs_frames(alone[None], oracle, [i], name)
    # any order and repeats
    indices = np.array([count - 1, 0, count // 2, 0])
    _assert_ffmpegs_frames(read_frames(str(path), indices), oracle, indices, name)
    # past the end: the last frame stands in
    _assert_ffmpegs_frames(read_frames(str(path), [count + 3]), oracle, [count - 1], name)


def test_threaded_decoding_gives_the_same_frames(videos):
    path, oracle = videos["h264_640x360.mp4"]
    indices = np.arange(len(oracle))
    try:
        for threads in (1, 2):
            decoding.set_threads(threads)
            _assert_ffmpegs_frames(read_frames(str(path), indices), oracle, indices, "h264_640x360.mp4")
    finally:
        decoding.set_threads(0)
    with pytest.raises(ValueError):
        decoding.set_threads(-1)


def test_damaged_mp4_gives_the_frames_ffmpeg_presents(exe, tmp_path):
    """An MP4 whose data ends early (index at the front): some packets do not
    decode, so it presents fewer frames than its packets; once a read meets
    that, frames are counted from the start as FFmpeg counts them."""
    full = encode(exe, tmp_path / "full.mp4", 120, 25, H264 + ["-movflags", "+faststart"])
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    oracle = ffmpeg_frames(exe, cut, HEIGHT, WIDTH)
    assert 0 < len(oracle) < 120
    # past the end of a file not read yet: FFmpeg's last frame stands in
    shutil.copyfile(cut, tmp_path / "cut_copy.mp4")
    _assert_ffmpegs_frames(read_frames(str(tmp_path / "cut_copy.mp4"), [200]), oracle,
                           [len(oracle) - 1], "cut_copy.mp4")
    clip = read_clip(str(cut), lambda n: decoding.eval_indices(n, 4, 2, 1))
    indices = decoding.eval_indices(len(oracle), 4, 2, 1)
    _assert_ffmpegs_frames(clip, oracle, indices, "cut.mp4")
    assert probe(str(cut))[0] == len(oracle)
    everything = np.arange(len(oracle))
    _assert_ffmpegs_frames(read_frames(str(cut), everything), oracle, everything, "cut.mp4")


def test_file_names_that_are_not_utf8(videos, tmp_path):
    """A name whose bytes are not UTF-8 (os.fsencode / surrogateescape): read as
    str or bytes; a bad file with such a name raises naming it, printably."""
    src, oracle = videos["xvid_mp3_25fps.avi"]
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9_\xff.avi")
    shutil.copyfile(src, raw)
    indices = np.array([0, 50, 99])
    for path in (raw, os.fsdecode(raw)):
        assert probe(path)[0] == len(oracle)
        _assert_ffmpegs_frames(read_frames(path, indices), oracle, indices, "caf\\xe9_\\xff.avi")
    bad = os.path.join(os.fsencode(tmp_path), b"bad_\xff.avi")
    with open(bad, "wb") as f:
        f.write(b"\x00not a video" * 100)
    for path in (bad, os.fsdecode(bad)):
        with pytest.raises(VideoReadError, match=r"bad_\\udcff\.avi") as e:
            read_clip(path, lambda n: np.arange(4))
        str(e.value).encode("utf-8")  # printable
        with pytest.raises(VideoReadError, match=r"bad_\\udcff\.avi"):
            probe(path)

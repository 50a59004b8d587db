"""Frame sampling and decoding, on real video files (OpenCV-written; see
test_data_decoding_ffmpeg.py for the check against FFmpeg)."""

import numpy as np
import pytest
from conftest import write_video

from keras_har.data import VideoReadError, probe, read_clip, read_frames, eval_indices, train_indices


def counter_video(path, num_frames, height=32, width=48):
    """Frame t is flat grey 4 * t + 10, so a decoded frame tells its index."""
    values = 4 * np.arange(num_frames) + 10
    frames = np.broadcast_to(values[:, None, None, None], (num_frames, height, width, 3))
    write_video(path, frames.astype(np.uint8))
    return path


def decoded_indices(frames):
    return np.round((frames.reshape(*frames.shape[:-3], -1).mean(-1) - 10) / 4).astype(int)


def test_train_indices_stride_and_random_start():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(1000):
        idx = train_indices(60, num_frames=8, sampling_rate=2, rng=rng)
        assert len(idx) == 8 and np.all(np.diff(idx) == 2)
        assert 0 <= idx[0] and idx[-1] <= 59
        starts.add(int(idx[0]))
    assert starts == set(range(0, 60 - 15 + 1))  # every start that fits


def test_short_video_is_padded_with_its_last_frame():
    idx = train_indices(5, num_frames=4, sampling_rate=2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(idx, [0, 2, 4, 4])
    np.testing.assert_array_equal(eval_indices(3, 4, 2, num_clips=2), [[0, 2, 2, 2]] * 2)


def test_test_indices_evenly_spaced_clips():
    np.testing.assert_array_equal(eval_indices(40, 4, 2, num_clips=1), [[16, 18, 20, 22]])
    clips = eval_indices(40, 4, 2, num_clips=3)  # latest start 33
    np.testing.assert_array_equal(clips[:, 0], [0, 16, 33])
    assert np.all(np.diff(clips, axis=1) == 2)


def test_probe_and_read_frames(tmp_path):
    path = counter_video(tmp_path / "c.avi", 40)
    count, fps, height, width = probe(str(path))
    assert (count, height, width) == (40, 32, 48) and fps == pytest.approx(25.0)
    idx = np.array([3, 1, 3, 39])  # any order, repeats
    frames = read_frames(str(path), idx)
    assert frames.shape == (4, 32, 48, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(decoded_indices(frames), idx)
    # A first frame far into the video is reached by seeking: same frames.
    np.testing.assert_array_equal(decoded_indices(read_frames(str(path), [34, 36, 38])), [34, 36, 38])


def test_video_ending_before_its_reported_count(tmp_path):
    path = counter_video(tmp_path / "full.avi", 40)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # keeps its header: "40 frames"
    assert probe(str(path))[0] == 40
    count = probe(str(cut))[0]  # the frames really there, not the header's 40
    assert 0 < count < 24
    good = count - 1  # the last frame may be cut in the middle
    np.testing.assert_array_equal(decoded_indices(read_frames(str(cut), np.arange(good))),
                                  np.arange(good))
    clip = read_clip(str(cut), lambda n: eval_indices(n, 4, 2, 1))
    np.testing.assert_array_equal(decoded_indices(clip), eval_indices(count, 4, 2, 1))


@pytest.mark.parametrize("content", [b"", b"\x00not a video" * 100])
def test_unreadable_files_raise_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.avi"
    path.write_bytes(content)
    with pytest.raises(VideoReadError, match="bad.avi"):
        read_clip(str(path), lambda n: np.arange(4))
    with pytest.raises(VideoReadError, match="missing.avi"):
        probe(str(tmp_path / "missing.avi"))

"""`keras-har prepare SRC DST` end to end on a small tree of real encodings.

Sources are encoded by imageio-ffmpeg's FFmpeg with frames that show their own
index (ffmpeg_oracle.py); FFmpeg's own decode of each source says which frames
it presents. Every output must present the same frames in the same order at
the new size, with a keyframe at least every N frames and no B-frames.
"""

import os

import av
import numpy as np
import pytest
from ffmpeg_oracle import encode, ffmpeg_exe, ffmpeg_frames, frame_codes

from keras_har import cli
from keras_har.data import decoding, prepare

XVID = ["-c:v", "mpeg4", "-vtag", "xvid", "-q:v", "4"]
H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "3"]
SIZE = (192, 96)  # width, height of the sources
SHORT, KEYINT = 48, 8


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    exe = ffmpeg_exe()
    src = tmp_path_factory.mktemp("prepare") / "src"
    for rel in ("a", "b/sub"):
        (src / rel).mkdir(parents=True)
    encode(exe, src / "a" / "x.avi", 40, 25, XVID + ["-bf", "2"], audio=True, size=SIZE)
    encode(exe, src / "b" / "y.mp4", 60, 30, H264 + ["-g", "1000"], size=SIZE)  # one keyframe
    encode(exe, src / "b" / "sub" / "z.webm", 30, 25,
           ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], size=SIZE)
    (src / "a" / "corrupt.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI not really" * 50)
    (src / "notes.txt").write_text("not a video")
    oracle = {rel: ffmpeg_frames(exe, src / rel, SIZE[1], SIZE[0])
              for rel in ("a/x.avi", "b/y.mp4", "b/sub/z.webm")}
    return src, oracle


def _run(src, dst, capsys):
    status = cli.main(["prepare", str(src), str(dst), "--short-side", str(SHORT),
                       "--keyframe-interval", str(KEYINT), "--workers", "2"])
    return status, capsys.readouterr()


def test_prepare_end_to_end(tree, tmp_path, capsys):
    src, oracle = tree
    dst = tmp_path / "dst"
    status, out = _run(src, dst, capsys)
    assert status == 2  # one video failed
    assert "prepared 3 of 4 videos" in out.out and "1 failed" in out.out
    assert "keras-har prepare: error: 1 videos failed" in out.err
    failures = (dst / prepare.FAILURES_NAME).read_text().splitlines()
    assert len(failures) == 1 and failures[0].startswith("a/corrupt.avi\t")
    assert sorted(map(str, prepare.find_videos(dst))) == ["a/x.avi", "b/sub/z.webm", "b/y.mp4"]
    assert not any(p.name.startswith(".") for p in dst.rglob("*"))  # no temporary left
    for rel, frames in oracle.items():
        out_path = dst / rel
        count, _, height, width = decoding.probe(out_path)
        assert count == len(frames), rel  # every frame FFmpeg presents of the source
        assert (height, width) == (SHORT, SHORT * 2)
        np.testing.assert_array_equal(frame_codes(decoding.read_frames(out_path, np.arange(count))),
                                      frame_codes(frames), err_msg=rel)
        with av.open(str(out_path)) as container:
            stream = container.streams.video[0]
            packets = [p for p in container.demux(stream) if p.size]
        keyframes = [i for i, p in enumerate(packets) if p.is_keyframe]
        assert keyframes[0] == 0 and np.all(np.diff(keyframes + [len(packets)]) <= KEYINT), rel
        assert [p.pts for p in packets] == sorted(p.pts for p in packets), f"{rel}: B-frames"
        assert not [s for s in av.open(str(out_path)).streams if s.type == "audio"]

    # A second run skips what is done and tries the failure again.
    mtimes = {p: p.stat().st_mtime_ns for p in dst.rglob("*.*") if p.suffix != ".txt"}
    status, out = _run(src, dst, capsys)
    assert status == 2 and "prepared 0 of 4 videos" in out.out and "3 already done" in out.out
    assert mtimes == {p: p.stat().st_mtime_ns for p in dst.rglob("*.*") if p.suffix != ".txt"}


def test_prepare_errors_are_one_line(tree, tmp_path, capsys):
    src, _ = tree
    assert cli.main(["prepare", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"keras-har prepare: error: {tmp_path / 'missing'}: no such directory"
    assert cli.main(["prepare", str(src), str(src / "inside")]) == 2
    assert "must be outside the source" in capsys.readouterr().err


def test_output_size_keeps_the_aspect_ratio_and_never_enlarges():
    assert prepare.output_size(1080, 1920, 320) == (320, 568)
    assert prepare.output_size(1920, 1080, 320) == (568, 320)
    assert prepare.output_size(240, 320, 320) == (240, 320)
    assert prepare.output_size(241, 323, 320) == (240, 324)  # even sides for 4:2:0


def test_prepare_video_names_an_unreadable_source(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(300))
    with pytest.raises(decoding.VideoReadError, match="bad.mp4"):
        prepare.prepare_video(bad, tmp_path / "out" / "bad.mp4")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

"""Test videos from real encoders, and FFmpeg's own decode of them as the oracle.

The FFmpeg binary comes from the `imageio-ffmpeg` wheel (the `test` extra);
without it, `ffmpeg_exe()` skips the test and says why. Every frame carries its
own index as a binary code of big black and white blocks (bit k: block k of the
top row white, of the bottom row black; the bottom row is the complement, a
check), which survives lossy compression, so a decoded frame tells which frame
it is.
"""

import os
import subprocess

import numpy as np
import pytest

WIDTH, HEIGHT, BLOCK, BITS = 128, 64, 16, 8  # 8 bits: up to 256 frames


def ffmpeg_exe():
    """The imageio-ffmpeg binary, or skip the test saying why."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no FFmpeg binary (pip install imageio-ffmpeg, the test extra): {e}")
    if not os.path.isfile(exe):
        pytest.skip(f"imageio-ffmpeg's binary {exe} is missing")
    return exe


def code_frame(index, width=WIDTH, height=HEIGHT):
    """An RGB frame showing `index` as blocks (see the module docstring)."""
    img = np.zeros((height, width), np.uint8)
    rows = height // 2
    block = width // BITS
    for k in range(BITS):
        bit = (index >> k) & 1
        img[:rows, k * block:(k + 1) * block] = 224 if bit else 32
        img[rows:, k * block:(k + 1) * block] = 32 if bit else 224
    return np.repeat(img[..., None], 3, axis=-1)


def frame_code(frame):
    """The index a frame shows, or -1 when its two rows disagree. A portrait
    frame is read turned back a quarter clockwise: FFmpeg presents a video with
    a 90-degree rotation tag turned a quarter counter-clockwise."""
    if frame.shape[0] > frame.shape[1]:
        return frame_code(np.rot90(frame, -1))
    grey = frame.astype(np.float32).mean(-1)
    rows, block = grey.shape[0] // 2, grey.shape[1] // BITS
    inner = slice(block // 4, block - block // 4)
    top = np.array([grey[rows // 4: rows - rows // 4, k * block:(k + 1) * block][:, inner].mean()
                    for k in range(BITS)]) > 128
    bottom = np.array([grey[rows + rows // 4: 2 * rows - rows // 4, k * block:(k + 1) * block][:, inner].mean()
                       for k in range(BITS)]) > 128
    if np.any(top == bottom):
        return -1
    return int(sum(int(b) << k for k, b in enumerate(top)))


def frame_codes(frames):
    return np.array([frame_code(f) for f in frames.reshape((-1,) + frames.shape[-3:])]).reshape(
        frames.shape[:-3])


def encode(exe, out, num_frames, fps, video_args, audio=False, size=(WIDTH, HEIGHT), first=0):
    """Encode frames `first..first+num_frames-1` (code frames) with FFmpeg, e.g.
    `video_args=["-c:v", "libx264"]`; `audio` adds an MP3 tone (as HMDB51's AVIs)."""
    width, height = size
    raw = np.stack([code_frame(first + i, width, height) for i in range(num_frames)]).tobytes()
    cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=22050:duration={num_frames / fps}",
                "-c:a", "libmp3lame"]
    subprocess.run(cmd + list(video_args) + [str(out)], input=raw, check=True, capture_output=True)
    return out


def ffmpeg(exe, *args):
    subprocess.run([exe, "-y", "-loglevel", "error", *map(str, args)], check=True, capture_output=True)


def ffmpeg_frames(exe, path, height, width):
    """Every frame FFmpeg presents (no frame dropped or repeated to a constant
    rate), RGB uint8 `(N, height, width, 3)`."""
    out = subprocess.run([exe, "-loglevel", "quiet", "-i", os.fsdecode(path), "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True).stdout
    size = height * width * 3
    assert len(out) % size == 0, f"FFmpeg's frames of {path} are not {width}x{height}"
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)

"""Re-encode a video dataset for fast clip loading (`keras-har prepare SRC DST`).

Like mmaction2's `resize_videos`: every video under SRC is written to the same
relative path under DST, with its short side brought down to `short_side`
pixels (never enlarged), a keyframe at least every `keyframe_interval` frames
and no B-frames (H.264; VP9 for .webm), without audio. Each output keeps
every frame FFmpeg presents of its source, in order, at the source's average
frame rate (a variable-rate source becomes constant-rate; clips are sampled by
frame index, so they are the same clips).

Why: a clip is read by seeking to the keyframe before its first frame and
decoding forward, so the cost of a clip is the frames between that keyframe
and its last frame, times the cost of a frame. Kinetics-style sources (up to
1080p, a keyframe every few seconds or only one) decode every clip from far
back at full resolution; after `prepare` a clip decodes at most
`keyframe_interval - 1` extra frames of a 320 px video.

Files already in DST are skipped (outputs are written under a temporary name
and renamed when they decode), so an interrupted run resumes; the videos that
fail are listed, one `relative/path<TAB>reason` line each, in a failures file.
"""

import concurrent.futures
import fractions
import multiprocessing
import os
import pathlib

from keras_har.data import decoding

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".3gp", ".ogv")
FAILURES_NAME = "prepare_failures.txt"


def find_videos(root):
    """Relative paths of the video files under `root` (by extension), sorted."""
    root = pathlib.Path(root)
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def output_size(height, width, short_side):
    """`(height, width)` with the short side at most `short_side`, the aspect
    ratio kept, both even (4:2:0 chroma needs it)."""
    scale = min(1.0, short_side / min(height, width))
    return (max(2, int(round(height * scale / 2)) * 2), max(2, int(round(width * scale / 2)) * 2))


def encoder_stream(container, path, fps, size, keyframe_interval, threads):
    """A video stream on `container`: H.264 (VP9 for .webm), constant quality,
    a keyframe at least every `keyframe_interval` frames, no B-frames."""
    rate = fractions.Fraction(fps).limit_denominator(1001) if fps > 0 else fractions.Fraction(25)
    if path.suffix.lower() == ".webm":
        stream = container.add_stream("libvpx-vp9", rate=rate)
        stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"}
    else:
        stream = container.add_stream("libx264", rate=rate)
        stream.options = {"preset": "veryfast", "crf": "23"}
    stream.height, stream.width = size
    stream.pix_fmt = "yuv420p"
    context = stream.codec_context
    context.gop_size = keyframe_interval
    context.max_b_frames = 0
    context.thread_count = threads
    stream.time_base = 1 / rate
    return stream


def prepare_video(src, dst, short_side=320, keyframe_interval=16, threads=1):
    """Re-encode one video (see the module docstring); returns the number of
    frames written. The output is written under a temporary name beside `dst`
    and renamed once it decodes to as many frames; raises `VideoReadError`
    naming the file when the source cannot be read or the output does not
    check out."""
    import av

    src, dst = pathlib.Path(src), pathlib.Path(dst)
    count, fps, height, width = decoding.probe(src)
    size = output_size(height, width, short_side)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.part-{os.getpid()}{dst.suffix}")
    written = 0
    try:
        with av.open(str(tmp), "w") as container:
            stream = encoder_stream(container, dst, fps, size, keyframe_interval, threads)
            for image in decoding.iter_frames(src, size):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = written
                container.mux(stream.encode(frame))
                written += 1
            container.mux(stream.encode(None))
        if written == 0:
            raise decoding.VideoReadError(f"{src}: no frame could be decoded.")
        got = decoding.probe(tmp)[0]
        if got != written:
            raise decoding.VideoReadError(f"{dst}: the output presents {got} frames, {written} were written.")
        decoding.read_frames(tmp, [0, written // 2, written - 1])
        os.replace(tmp, dst)
    except av.FFmpegError as e:
        raise decoding.VideoReadError(f"{src}: {e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return written


def _job(src, dst, short_side, keyframe_interval, threads):
    try:
        return prepare_video(src, dst, short_side, keyframe_interval, threads), None
    except Exception as e:  # one bad video must not stop the others; it is listed
        lines = str(e).strip().splitlines()
        return 0, lines[0] if lines else type(e).__name__


def prepare_dataset(src, dst, short_side=320, keyframe_interval=16, workers=None, failures=None,
                    progress=True):
    """Re-encode every video under `src` to the same relative path under `dst`.

    Runs `workers` processes (default: one per CPU) with a progress bar, skips
    outputs already there, and writes the failures (`path<TAB>reason`, paths
    relative to `src`) to `failures` (default `dst/prepare_failures.txt`; an
    old one is removed when nothing fails). Returns
    `{"videos", "done", "skipped", "failed", "frames", "failures_file"}`.
    """
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such directory")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ValueError(f"{dst}: the destination must be outside the source {src}")
    if short_side < 2 or keyframe_interval < 1:
        raise ValueError("short_side must be >= 2 and keyframe_interval >= 1")
    videos = find_videos(src)
    todo = [rel for rel in videos if not (dst / rel).exists()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    failed, frames = [], 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="video", desc="prepare", dynamic_ncols=True)
    context = multiprocessing.get_context("spawn")  # no fork of a process with decoder threads
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = {pool.submit(_job, src / rel, dst / rel, short_side, keyframe_interval, threads): rel
                for rel in todo}
        for job in concurrent.futures.as_completed(jobs):
            written, error = job.result()
            if error is None:
                frames += written
            else:
                failed.append((str(jobs[job]), error))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=len(failed))
    if bar is not None:
        bar.close()
    failures = pathlib.Path(failures) if failures else dst / FAILURES_NAME
    if failed:
        failures.parent.mkdir(parents=True, exist_ok=True)
        with open(failures, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.writelines(f"{rel}\t{reason}\n" for rel, reason in sorted(failed))
    elif failures.exists():
        failures.unlink()
    return {"videos": len(videos), "done": len(todo) - len(failed), "skipped": len(videos) - len(todo),
            "failed": len(failed), "frames": frames, "failures_file": str(failures) if failed else None}

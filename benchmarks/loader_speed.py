"""Clips per second of the training input pipeline (decode, augment, batch).

Writes HMDB51-like videos (320x240 XVID .avi, HMDB51's codec, ~90 frames) to a
temp dir (or takes your own videos with `--data-root DIR`: every video file
under DIR), then times, in one run:

- `grain` with 1 and 2 worker processes and `tf` (tf.data parallel map) with 1
  and 2 parallel calls: `keras_har.data.make_loader(training=True)`, 16 frames
  at stride 2, 224 px, clip-consistent RandomResizedCrop + flip, Mixup 0.8,
  with the library's frame-exact decoder (`decoder: "pyav"`);
- the same `grain` loaders reading clips with an OpenCV decoder
  (`decoder: "opencv"`, opencv_decoding.py: seeks by frame number), side by side;
- `naive_pil`: the reference protocol's baseline loader, in the main process:
  decode every frame of the video, then per-frame PIL resize / random crop /
  flip and float normalisation.

    python benchmarks/loader_speed.py [--json PATH] [--quick] [--data-root DIR] [--docs DIR]
    python benchmarks/loader_speed.py --write-hd DIR   # 1080p H.264 sources, one keyframe each

Every loader is measured `--repeat` times (rows interleaved) and the best is
kept; the decoders alone are also timed in CPU ms per clip in this process,
which other processes on the machine hardly affect. The JSON holds
{"results": [{"pipeline", "decoder", "workers", "clips_per_s"}, ...],
"decode_cpu_ms_per_clip": {"pyav", "opencv"}, "machine": {cpu, cpus, load_average}, ...}. `--quick` (few videos, few batches)
finishes in well under a minute. `--docs DIR` also writes the documentation
page (docs_pages.py).
"""

import argparse
import contextlib
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
import types

import numpy as np

import docs_pages  # beside this script
import machine_info
from machine_info import cpu_name, load_average

from keras_har.data.normalization import IMAGENET_MEAN as MEAN
from keras_har.data.normalization import IMAGENET_STD as STD


def write_videos(root, num_videos, num_frames, height=240, width=320, seed=0):
    """`root/<class>/*.avi`: a moving, coloured box over a textured background."""
    import cv2

    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), (width, height))
    for i in range(num_videos):
        folder = pathlib.Path(root) / f"class_{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(folder / f"v_{i:03d}.avi"), cv2.VideoWriter_fourcc(*"XVID"),
                                 30.0, (width, height))
        shift = int(rng.integers(0, width))
        for t in range(num_frames):
            frame = np.roll(texture, shift + 3 * t, axis=1).copy()
            x = (20 + 4 * t) % (width - 60)
            frame[90:150, x : x + 60] = (40 * (i % 6), 200, 255 - 30 * (i % 8))
            writer.write(frame)
        writer.release()


def write_hd_videos(root, num_videos=6, num_frames=90, height=1080, width=1920, seed=0):
    """`root/<class>/*.mp4`: 1080p H.264 with a single keyframe (a long-GOP
    source as Kinetics' can be), the moving box over a texture with camera-like
    noise (a few Mbit/s, as real 1080p sources)."""
    import av
    import cv2

    from keras_har.data.prepare import encoder_stream

    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.integers(0, 255, (270, 480, 3), dtype=np.uint8), (width, height))
    grain = rng.integers(0, 12, (8, height, width, 1), dtype=np.uint8)  # camera noise: a real bitrate
    for i in range(num_videos):
        path = pathlib.Path(root) / f"class_{i % 3}" / f"hd_{i:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as container:
            stream = encoder_stream(container, path, 30.0, (height, width), 10**6, os.cpu_count() or 1)
            stream.codec_context.max_b_frames = 3
            for t in range(num_frames):
                frame = np.roll(texture, 8 * t + 40 * i, axis=1) + grain[t % len(grain)]
                x = (60 + 12 * t) % (width - 200)
                frame[400:600, x:x + 200] = (40 * (i % 6), 200, 255 - 30 * (i % 8))
                image = av.VideoFrame.from_ndarray(frame, format="rgb24")
                image.pts = t
                container.mux(stream.encode(image))
            container.mux(stream.encode(None))
        print(f"wrote {path}")


def video_index(root):
    """Every video file under `root`, labelled by its parent folder."""
    from keras_har.data.prepare import find_videos

    paths = [pathlib.Path(root) / rel for rel in find_videos(root)]
    if not paths:
        raise SystemExit(f"{root}: no video files")
    class_names = sorted({p.parent.name for p in paths})
    items = [(str(p), class_names.index(p.parent.name)) for p in paths]
    return types.SimpleNamespace(items=items, class_names=class_names)


def time_batches(batches, clips_per_batch, num_batches, warmup=1):
    """Clips per second over `num_batches` batches after `warmup` ones."""
    iterator = iter(batches)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        next(iterator)
    elapsed = time.perf_counter() - start
    close = getattr(iterator, "close", None)
    if close:
        close()
    return clips_per_batch * num_batches / elapsed


def naive_pil_batches(items, batch_size, num_frames, sampling_rate, image_size, seed=0):
    """The reference protocol's baseline: every frame decoded, PIL transforms drawn per frame."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)
    short = int(round(image_size * 256 / 224))
    while True:
        clips = []
        for _ in range(batch_size):
            path, _ = items[int(rng.integers(len(items)))]
            cap = cv2.VideoCapture(path)
            frames = []
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            cap.release()
            span = (num_frames - 1) * sampling_rate + 1
            start = int(rng.integers(0, max(1, len(frames) - span + 1)))
            idx = np.minimum(start + np.arange(num_frames) * sampling_rate, len(frames) - 1)
            out = []
            for i in idx:
                img = Image.fromarray(frames[i])
                w, h = img.size
                scale = short / min(w, h)
                img = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
                side = int(short * rng.uniform(0.8, 1.0))
                x0 = int(rng.integers(0, img.size[0] - side + 1))
                y0 = int(rng.integers(0, img.size[1] - side + 1))
                img = img.crop((x0, y0, x0 + side, y0 + side)).resize((image_size, image_size),
                                                                       Image.BILINEAR)
                if rng.random() < 0.5:
                    img = img.transpose(Image.FLIP_LEFT_RIGHT)
                out.append((np.asarray(img, np.float32) / 255.0 - mean) / std)
            clips.append(np.stack(out))
        yield np.stack(clips), None


def decode_cpu_ms(items, read_clip, num_clips, seed=0):
    """CPU milliseconds per training clip of `read_clip` alone, in this process
    on one thread (little affected by other processes on the machine)."""
    from keras_har.data import decoding

    rng = np.random.default_rng(seed)
    paths = [items[int(i)][0] for i in rng.integers(len(items), size=num_clips)]
    read_clip(paths[0], lambda n: decoding.train_indices(n, 16, 2, rng))  # warm-up
    start = time.process_time()
    for path in paths:
        read_clip(path, lambda n: decoding.train_indices(n, 16, 2, rng))
    return (time.process_time() - start) / num_clips * 1000


def markdown(report):
    """The tables of a run's JSON (its documentation page)."""
    c = report["config"]
    source = (f"the videos under `{c['data_root']}`" if c["data_root"] else
              f"generated 320x240 XVID .avi videos of {c['frames_per_video']} frames")
    lines = [f"{c['videos']} videos ({source}); clips of {c['num_frames']} frames at stride "
             f"{c['sampling_rate']}, {c['image_size']} px, batches of {c['batch_size']}, "
             f"{c['timed_batches']} timed batches, best of {c['repeat']} interleaved rounds"
             + (" (`--quick`: an order of magnitude, not a measurement of the loaders)" if c["quick"] else "") + ".",
             "", "| pipeline | decoder | workers | clips/s |", "|---|---|---|---|"]
    lines += [f"| {r['pipeline']} | {r['decoder']} | {r['workers']} | {r['clips_per_s']} |" for r in report["results"]]
    ms = report["decode_cpu_ms_per_clip"]
    lines += ["", "Decoding alone, CPU milliseconds per training clip on one thread: "
              + ", ".join(f"{k} {v}" for k, v in ms.items()) + "."]
    return "\n".join(lines)


def run(quick=False, json_path=None, data_root=None, repeat=None):
    import cv2

    import opencv_decoding  # beside this script
    from keras_har.data import VideoFolder, decoding, make_loader

    num_videos, num_frames, num_batches = (8, 40, 2) if quick else (64, 90, 24)
    batch_size = 2 if quick else 8
    if data_root and not quick:
        batch_size, num_batches = 4, 6
    repeat = repeat or (1 if quick else 2)
    rows = [("grain", "pyav", 1), ("grain", "opencv", 1), ("grain", "pyav", 2), ("grain", "opencv", 2),
            ("tf", "pyav", 1), ("tf", "pyav", 2)]
    rates = {row: [] for row in rows}
    with contextlib.ExitStack() as stack:
        if data_root:
            dataset = video_index(data_root)
            print(f"{len(dataset.items)} videos under {data_root}")
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="keras_har_loader_speed_"))
            start = time.perf_counter()
            write_videos(tmp, num_videos, num_frames)
            print(f"wrote {num_videos} videos of {num_frames} frames (320x240 XVID) "
                  f"in {time.perf_counter() - start:.1f}s")
            dataset = VideoFolder(tmp)
        print(f"CPU: {cpu_name()} ({os.cpu_count()} cores), load average {load_average()}")
        cv2.setNumThreads(1)
        decoding.set_threads(1)
        num_clips = 4 if quick else (12 if data_root else 64)
        decode_ms = {name: round(decode_cpu_ms(dataset.items, fn, num_clips), 2) for name, fn in
                     (("pyav", decoding.read_clip), ("opencv", opencv_decoding.read_clip))}
        decoding.set_threads(0)
        print(f"decoding alone, CPU ms per clip (one thread): {decode_ms}")
        for round_ in range(repeat):  # rows interleaved, best of the rounds
            for row in rows:
                loader, decoder, workers = row
                batches = make_loader(
                    dataset, training=True, batch_size=batch_size, num_frames=16,
                    sampling_rate=2, image_size=224, mean=MEAN, std=STD, mixup_alpha=0.8,
                    loader=loader, workers=workers, seed=round_, epochs=None,
                )
                if decoder == "opencv":
                    opencv_decoding.use_opencv(batches)
                # warm-up: every worker has started and delivered a batch
                rates[row].append(time_batches(batches.for_fit(), batch_size, num_batches,
                                               warmup=workers + 1))
                print(f"{loader:>9} {decoder:>6} workers={workers}: {rates[row][-1]:6.1f} clips/s "
                      f"(round {round_ + 1}/{repeat}, load {load_average()[0]})")
        results = [{"pipeline": loader, "decoder": decoder, "workers": workers,
                    "clips_per_s": round(max(rates[(loader, decoder, workers)]), 2)}
                   for loader, decoder, workers in rows]
        naive = naive_pil_batches(dataset.items, batch_size, 16, 2, 224)
        rate = time_batches(naive, batch_size, max(1, num_batches // 2))
        results.append({"pipeline": "naive_pil", "decoder": "opencv", "workers": 0,
                        "clips_per_s": round(rate, 2)})
        print(f"naive_pil opencv workers=0: {rate:6.1f} clips/s")
        print("best of the rounds:")
        for r in results:
            print(f"{r['pipeline']:>9} {r['decoder']:>6} workers={r['workers']}: {r['clips_per_s']:6.1f} clips/s")
    report = {
        "results": results,
        "decode_cpu_ms_per_clip": decode_ms,
        "config": {"repeat": repeat, "videos": len(dataset.items), "data_root": data_root,
                   "frames_per_video": None if data_root else num_frames,
                   "video_size": None if data_root else [320, 240],
                   "num_frames": 16, "sampling_rate": 2, "image_size": 224,
                   "batch_size": batch_size, "timed_batches": num_batches, "quick": quick},
        "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "load_average": load_average(),
                    "python": platform.python_version()},
    }
    print(f"load average at the end: {load_average()}")
    if json_path:
        pathlib.Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(json_path).write_text(json.dumps(report, indent=2))
        print(f"wrote {json_path}")
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a small run (< 1 min)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="time your own videos: every video file under DIR (labels: parent folders)")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="measure every loader N times, interleaved, and keep the best "
                             "(default 2; 1 with --quick)")
    docs_pages.add_docs_args(parser)
    parser.add_argument("--write-hd", metavar="DIR",
                        help="only write 1080p single-keyframe H.264 videos into DIR, then exit")
    args = parser.parse_args(argv)
    if args.write_hd:
        write_hd_videos(args.write_hd)
        return
    machine = machine_info.describe()
    report = run(quick=args.quick, json_path=args.json, data_root=args.data_root, repeat=args.repeat)
    if args.docs:
        docs_pages.write(args.docs, "loader_speed", report, sys.argv[1:] if argv is None else argv,
                         args.docs_note, machine)


if __name__ == "__main__":
    main()

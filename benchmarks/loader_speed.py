"""Clips per second of the training input pipeline (decode, augment, batch).

Writes HMDB51-like videos (320x240 XVID .avi, HMDB51's codec, ~90 frames) to a temp dir, then
times, in one run:

- `grain` with 1 and 2 worker processes and `tf` (tf.data parallel map) with 1
  and 2 parallel calls: `keras_har.data.make_loader(training=True)`, 16 frames
  at stride 2, 224 px, clip-consistent RandomResizedCrop + flip, Mixup 0.8;
- `naive_pil`: the seed's baseline, in the main process: decode every frame of
  the video, then per-frame PIL resize / random crop / flip and float
  normalisation.

    python benchmarks/loader_speed.py [--json PATH] [--quick]

The JSON holds {"results": [{"pipeline", "workers", "clips_per_s"}, ...], ...}.
`--quick` (small videos count, few batches) finishes in well under 30 s.
"""

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

import numpy as np

from machine_info import cpu_name  # beside this script

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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
    """The seed baseline: every frame decoded, PIL transforms drawn per frame."""
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


def run(quick=False, json_path=None):
    from keras_har.data import VideoFolder, make_loader

    num_videos, num_frames, num_batches = (8, 40, 2) if quick else (64, 90, 24)
    batch_size = 2 if quick else 8
    workers_list = (1, 2)
    results = []
    with tempfile.TemporaryDirectory(prefix="keras_har_loader_speed_") as tmp:
        start = time.perf_counter()
        write_videos(tmp, num_videos, num_frames)
        print(f"wrote {num_videos} videos of {num_frames} frames (320x240 XVID) "
              f"in {time.perf_counter() - start:.1f}s")
        dataset = VideoFolder(tmp)
        for loader in ("grain", "tf"):
            for workers in workers_list:
                batches = make_loader(
                    dataset, training=True, batch_size=batch_size, num_frames=16,
                    sampling_rate=2, image_size=224, mean=MEAN, std=STD, mixup_alpha=0.8,
                    loader=loader, workers=workers, seed=0, epochs=None,
                ).for_fit()
                # warm-up: every worker has started and delivered a batch
                rate = time_batches(batches, batch_size, num_batches, warmup=workers + 1)
                results.append({"pipeline": loader, "workers": workers, "clips_per_s": round(rate, 2)})
                print(f"{loader:>9} workers={workers}: {rate:6.1f} clips/s")
        naive = naive_pil_batches(dataset.items, batch_size, 16, 2, 224)
        rate = time_batches(naive, batch_size, max(1, num_batches // 2))
        results.append({"pipeline": "naive_pil", "workers": 0, "clips_per_s": round(rate, 2)})
        print(f"naive_pil workers=0: {rate:6.1f} clips/s")
    report = {
        "results": results,
        "config": {"videos": num_videos, "frames_per_video": num_frames, "video_size": [320, 240],
                   "num_frames": 16, "sampling_rate": 2, "image_size": 224,
                   "batch_size": batch_size, "timed_batches": num_batches, "quick": quick},
        "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if json_path:
        pathlib.Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(json_path).write_text(json.dumps(report, indent=2))
        print(f"wrote {json_path}")
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a small run (< 30 s)")
    args = parser.parse_args(argv)
    run(quick=args.quick, json_path=args.json)


if __name__ == "__main__":
    main()

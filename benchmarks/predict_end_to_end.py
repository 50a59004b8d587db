"""End-to-end video labelling speed: `keras-har predict` beside transformers'
`pipeline("video-classification")`, same videos, same checkpoint directory.

What is timed is what a user runs: video files in, top-5 labels out, decoding
included. Every setting runs in its own process:

- keras-har: `keras_har.cli.main(["predict", *videos, "--preset", CKPT,
  "--views", single|tta, "--json"])` -- the `keras-har predict` command in
  process (the Hugging Face checkpoint directory converted on load) -- under a
  Keras backend, or `--exported PATH [--precision P]` (an export of the same
  checkpoint, run by its runtime);
- transformers: `pipeline("video-classification", model=CKPT)` called on the
  same files one by one (its default: the checkpoint's VideoMAEVideoProcessor,
  which decodes with torchcodec; transformers 5 has no other default decoder --
  torchvision >= 0.26 dropped video reading -- and the pipeline also requires
  PyAV. Without a loadable torchcodec it falls back to the pipeline's own PyAV
  path with the image processor, and says so).

Reported per setting: videos/s over the videos (model loading apart, in
`load s`), and the time per video in decode, preprocess (resize, crop,
normalise, views) and model, measured by wrapping the functions the command
calls (keras-har: `decoding.probe` and `pipeline._view_frames` = decode, the
rest of `load_video_views` = preprocess, `view_logits` = model; transformers:
the video processor's `fetch_videos` = decode, the rest of the pipeline's
`preprocess` = preprocess, `_forward` = model). Target: the fastest
keras-har setting >= 1.5x transformers with 1 view.

The videos (HMDB51-like: 320x240 XviD AVI at 30 fps, 3-5 s, 32 of them) are
encoded with imageio-ffmpeg's FFmpeg from its synthetic sources; the checkpoint
is a random-init VideoMAE-B (transformers' VideoMAEConfig defaults, 51 labels)
saved with `save_pretrained` plus `VideoMAEImageProcessor`'s
preprocessor_config.json. Both are made in `--work-dir` when missing.

    python benchmarks/predict_end_to_end.py --work-dir /tmp/e2e [--keras-har tensorflow,jax]
        [--exported /tmp/e2e/model.xml:bfloat16] [--views single,tta] [--json out.json]
    python benchmarks/predict_end_to_end.py --quick   # tiny checkpoint, 4 short videos (tests run it)

`--docs DIR` also writes the documentation page (docs_pages.py).
"""

import argparse
import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import docs_pages  # noqa: E402
import machine_info  # noqa: E402

TARGET = 1.5
RESULT_TAG = "@@PREDICT_E2E@@ "
NUM_LABELS = 51
BASE = dict(image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=768,
            num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TINY = dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
# FFmpeg's synthetic sources, one per video in turn (motion, texture, flat areas).
SOURCES = ("testsrc2", "mandelbrot", "life=mold=10:ratio=0.1:death_color=#C83232:life_color=#00ff00",
           "cellauto=rule=110", "smptehdbars", "rgbtestsrc")


# -- inputs ------------------------------------------------------------------------------------

def make_videos(out, count, size=(320, 240), seconds=(3.0, 5.0), fps=30):
    """`count` XviD AVI files (HMDB51's codec and size), durations spread over
    `seconds`; files already there are kept."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = out / f"video_{i:02d}.avi"
        paths.append(path)
        if path.exists() and path.stat().st_size > 0:
            continue
        duration = seconds[0] + (seconds[1] - seconds[0]) * (i % 8) / 7
        source = SOURCES[i % len(SOURCES)]
        sep = ":" if "=" in source else "="
        src = f"{source}{sep}size={size[0]}x{size[1]}:rate={fps}"
        # Moving noise: a bitrate like a real camera's, not a still test card's.
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src,
                        "-t", f"{duration:.2f}", "-vf", f"noise=alls={8 + i % 5}:allf=t,hue=h={i * 37}",
                        "-c:v", "mpeg4", "-vtag", "XVID", "-q:v", "5", "-pix_fmt", "yuv420p",
                        str(path.with_suffix(".tmp.avi"))], check=True)
        os.replace(path.with_suffix(".tmp.avi"), path)
    return paths


def make_checkpoint(out, cfg):
    """A random-init VideoMAEForVideoClassification (51 labels) in Hugging Face
    format: config.json, model.safetensors, preprocessor_config.json."""
    if (out / "config.json").exists() and (out / "preprocessor_config.json").exists():
        return out
    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor

    torch.manual_seed(0)
    labels = {i: f"class_{i:02d}" for i in range(NUM_LABELS)}
    config = VideoMAEConfig(**cfg, num_labels=NUM_LABELS, id2label=labels,
                            label2id={v: k for k, v in labels.items()})
    model = VideoMAEForVideoClassification(config)
    with torch.no_grad():  # logits with spread: top-1 labels that differ between videos
        model.classifier.weight.normal_(0, 0.05)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    size = cfg["image_size"]
    VideoMAEImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}
                           ).save_pretrained(tmp)
    os.replace(tmp, out)
    return out


# -- the timed processes -----------------------------------------------------------------------

class Clock:
    """Seconds spent inside wrapped functions, per part (nested calls of the
    same part are counted once)."""

    def __init__(self):
        self.spent, self._depth = {}, {}

    def wrap(self, part, fn):
        def timed(*args, **kwargs):
            depth = self._depth.get(part, 0)
            self._depth[part] = depth + 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth[part] = depth
                if depth == 0:
                    self.spent[part] = self.spent.get(part, 0.0) + time.perf_counter() - start
        return timed


def run_keras_har(job):
    """`keras-har predict` in this process, its parts timed."""
    from keras_har import cli, data, evaluation, runtimes
    from keras_har.data import decoding, pipeline

    clock = Clock()
    decoding.probe = clock.wrap("probe", decoding.probe)  # predict checks every file first
    pipeline._view_frames = clock.wrap("frames", pipeline._view_frames)
    data.load_video_views = clock.wrap("views", data.load_video_views)
    evaluation.view_logits = clock.wrap("model", evaluation.view_logits)
    runtimes.view_logits = clock.wrap("model", runtimes.view_logits)
    cli._predict_model = clock.wrap("load", cli._predict_model)
    argv = ["predict", *job["videos"], "--views", job["views"], "--json"]
    if job.get("exported"):
        argv += ["--exported", job["exported"]]
        if job.get("precision"):
            argv += ["--precision", job["precision"]]
    else:
        argv += ["--preset", job["checkpoint"]]
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"keras-har predict exited {status}")
    results = json.loads(out.getvalue())
    spent = clock.spent
    if job.get("exported"):
        import importlib

        runtime = runtimes.runtime_for(job["exported"])
        module = {"litert": "ai_edge_litert"}.get(runtime, runtime)
        version = getattr(importlib.import_module(module), "__version__", "?")
        framework = f"{runtime} {version}"
    else:
        import keras

        backend = keras.backend.backend()
        framework = f"keras {keras.__version__}, {backend} {__import__(backend).__version__}"
    return dict(wall_s=wall, load_s=spent.get("load", 0.0),
                decode_s=spent.get("probe", 0.0) + spent.get("frames", 0.0),
                preprocess_s=spent.get("views", 0.0) - spent.get("frames", 0.0), model_s=spent.get("model", 0.0), framework=framework,
                num_views=results[0]["num_views"], top1=[r["top"][0]["label"] for r in results])


def run_transformers(job):
    """transformers' video-classification pipeline on the same files, one call per file."""
    import torch
    import transformers
    from transformers import pipeline

    clock = Clock()
    start = time.perf_counter()
    dtype = getattr(torch, job.get("dtype") or "float32")
    pipe = pipeline("video-classification", model=job["checkpoint"], device="cpu", dtype=dtype)
    decoder = "torchcodec (VideoMAEVideoProcessor)"
    if pipe.video_processor is not None and not _torchcodec_usable():
        pipe.video_processor = None  # the pipeline then decodes with PyAV and uses the image processor
        decoder = "pyav (image processor; torchcodec not loadable)"
    elif pipe.video_processor is None:
        decoder = "pyav (image processor)"
    load = time.perf_counter() - start
    if pipe.video_processor is not None:
        pipe.video_processor.fetch_videos = clock.wrap("decode", pipe.video_processor.fetch_videos)
    else:
        import transformers.pipelines.video_classification as vc

        vc.read_video_pyav = clock.wrap("decode", vc.read_video_pyav)
    pipe.preprocess = clock.wrap("decode+preprocess", pipe.preprocess)
    pipe._forward = clock.wrap("model", pipe._forward)
    top1 = []
    start = time.perf_counter()
    for path in job["videos"]:
        top1.append(pipe(path, top_k=5)[0]["label"])
    wall = time.perf_counter() - start + load
    spent = clock.spent
    return dict(wall_s=wall, load_s=load, decode_s=spent.get("decode", 0.0),
                preprocess_s=spent.get("decode+preprocess", 0.0) - spent.get("decode", 0.0),
                model_s=spent.get("model", 0.0), num_views=1, top1=top1, decoder=decoder,
                dtype_used=str(next(pipe.model.parameters()).dtype),
                framework=f"transformers {transformers.__version__}, torch {torch.__version__}")


def _torchcodec_usable():
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or its FFmpeg libraries are
        return False
    return True


def worker_main(job):
    import warnings

    warnings.filterwarnings("ignore")
    result = run_transformers(job) if job["impl"] == "transformers" else run_keras_har(job)
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_setting(job, env, timeout):
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", json.dumps(job)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    return {"error": f"exit {proc.returncode}: {tail[-1500:]}"}


# -- the run -----------------------------------------------------------------------------------

def settings(args):
    """(name, job fields, KERAS_BACKEND) of every keras-har setting."""
    out = []
    for backend in filter(None, args.keras_har.split(",")):
        out.append((f"keras-har predict --preset ({backend})", {}, backend))
    for item in args.exported or []:
        path, _, precision = item.partition(":")
        name = f"keras-har predict --exported {pathlib.Path(path).name}" + (f" --precision {precision}"
                                                                            if precision else "")
        out.append((name, {"exported": path, "precision": precision or None}, "tensorflow"))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a tiny checkpoint (32 px, 4 frames, 2 layers) and 4 short videos")
    parser.add_argument("--work-dir", help="videos/ and checkpoint/ are made here when missing "
                                           "(default: a temporary directory)")
    parser.add_argument("--num-videos", type=int, default=None, help="default 32 (4 with --quick)")
    parser.add_argument("--keras-har", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                        help="Keras backends to run `predict --preset` under (comma list; default "
                             "KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--exported", nargs="*", metavar="PATH[:PRECISION]",
                        help="also `predict --exported PATH` (an export of the same checkpoint: keras-har "
                             "export --preset WORK/checkpoint ...), with --precision PRECISION if given")
    parser.add_argument("--views", default="single,tta", help="keras-har views: single (1), tta (6)")
    parser.add_argument("--tta-all", action="store_true",
                        help="run tta with every keras-har setting (default: only with the one fastest "
                             "on a single view)")
    parser.add_argument("--no-transformers", dest="transformers", action="store_false")
    parser.add_argument("--transformers-dtypes", default="float32,bfloat16",
                        help="the pipeline's model dtype(s), comma list: float32 (its default), bfloat16 "
                             "(the model cast: its fastest CPU setting)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per setting")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    docs_pages.add_docs_args(parser)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(json.loads(args.worker))
    machine_description = machine_info.describe()
    count = args.num_videos or (4 if args.quick else 32)
    work = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="predict_e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = TINY if args.quick else BASE
    videos = make_videos(work / "videos", count, seconds=(1.0, 1.5) if args.quick else (3.0, 5.0))
    checkpoint = make_checkpoint(work / ("checkpoint_tiny" if args.quick else "checkpoint"), cfg)
    machine = {"cpu": machine_info.cpu_name(), "cores": os.cpu_count(), "flags": machine_info.cpu_flags(),
               "load_before": machine_info.load_average()}
    print(f"# {count} videos in {work / 'videos'}, checkpoint {checkpoint}; CPU {machine['cpu']} "
          f"({machine['cores']} cores), load {machine['load_before']}", file=sys.stderr, flush=True)
    common = {"videos": [str(v) for v in videos], "checkpoint": str(checkpoint)}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore",
           "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    jobs = []
    for dtype in filter(None, args.transformers_dtypes.split(",") if args.transformers else []):
        name = 'transformers pipeline("video-classification")' + ("" if dtype == "float32" else f", {dtype}")
        jobs.append((name, dict(common, impl="transformers", views="single", dtype=dtype), "torch"))
    views_asked = [v for v in args.views.split(",") if v]
    later = []  # multi-view jobs: with --tta-all every setting, else the fastest single-view one
    for name, fields, backend in settings(args):
        for views in views_asked:
            job = (name, dict(common, impl="keras_har", views=views, **fields), backend)
            (jobs if views == "single" or args.tta_all or "single" not in views_asked else later).append(job)
    total = len(jobs) + len({j[1]["views"] for j in later})

    def run(batch):
        for name, job, backend in batch:
            t = time.perf_counter()
            result = run_setting(job, dict(env, KERAS_BACKEND=backend), args.timeout)
            row = dict(name=name, views=job["views"], backend=backend, **result)
            if "error" not in row:
                n = len(videos)
                row.update(videos=n, videos_per_s=n / (row["wall_s"] - row["load_s"]),
                           videos_per_s_with_load=n / row["wall_s"])
            rows.append(row)
            print(f"[{len(rows)}/{total} {time.perf_counter() - t:4.0f} s] {_line(row)}", file=sys.stderr,
                  flush=True)

    run(jobs)
    single = [r for r in rows if r["name"].startswith("keras-har") and "error" not in r]
    if later and single:
        fastest = max(single, key=lambda r: r["videos_per_s"])["name"]
        run([j for j in later if j[0] == fastest])
    machine["load_after"] = machine_info.load_average()
    result = {"model": "tiny VideoMAE (--quick)" if args.quick else "VideoMAE-B", "config": cfg,
              "videos": len(videos), "work_dir": str(work), "machine": machine, "rows": rows,
              "target": TARGET, "targets": check_target(rows)}
    report(result)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.docs:
        docs_pages.write(args.docs, "predict_end_to_end", result, sys.argv[1:] if argv is None else argv,
                         args.docs_note, machine_description)
    return 0 if all("error" not in r for r in rows) else 1


def check_target(rows):
    ok = [r for r in rows if "error" not in r]
    ref = next((r for r in ok if r["name"] == 'transformers pipeline("video-classification")'), None)
    ours = [r for r in ok if r["name"].startswith("keras-har") and r["views"] == "single"]
    if not ref or not ours:
        return {"single": {"met": None, "ratio": None}}
    best = max(ours, key=lambda r: r["videos_per_s"])
    ratio = best["videos_per_s"] / ref["videos_per_s"]
    return {"single": {"fastest": best["name"], "ratio": ratio, "met": ratio >= TARGET}}


def _line(r):
    if "error" in r:
        return f"{r['name']} {r['views']}: failed: {r['error'][-300:]}"
    n = r["videos"]
    return (f"{r['name']} {r['views']}: {r['videos_per_s']:.3f} videos/s (load {r['load_s']:.1f} s); per video "
            f"decode {1000 * r['decode_s'] / n:.0f} ms, preprocess {1000 * r['preprocess_s'] / n:.0f} ms, "
            f"model {1000 * r['model_s'] / n:.0f} ms")


def markdown(result):
    """The run's summary line, table and target (printed, and its documentation page)."""
    m = result["machine"]
    lines = [f"{result['model']}, {result['videos']} videos, on CPU: {m['cpu']} ({m['cores']} cores; load average "
             f"{m['load_before']} before, {m['load_after']} after)", ""]
    if result["model"].startswith("tiny"):
        lines += ["`--quick`: a tiny model on a few short videos. It checks that every setting runs end to end; "
                  "its speeds say nothing about VideoMAE-B.", ""]
    ref = next((r for r in result["rows"] if r["name"] == 'transformers pipeline("video-classification")'
                and "error" not in r), None)
    lines.append("| setting | views | videos/s | x transformers | load s | decode ms/video | preprocess ms/video "
                 "| model ms/video | other ms/video |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['name']} | {r['views']} | failed: {r['error'][-100:]!r} | | | | | | |")
            continue
        n = r["videos"]
        other = r["wall_s"] - r["load_s"] - r["decode_s"] - r["preprocess_s"] - r["model_s"]
        ratio = f"{r['videos_per_s'] / ref['videos_per_s']:.2f}x" if ref else "-"
        views = f"{r['views']} ({r['num_views']})"
        lines.append(f"| {r['name']} | {views} | {r['videos_per_s']:.3f} | {ratio} | {r['load_s']:.1f} "
                     f"| {1000 * r['decode_s'] / n:.0f} | {1000 * r['preprocess_s'] / n:.0f} "
                     f"| {1000 * r['model_s'] / n:.0f} | {1000 * other / n:.0f} |")
    lines.append("")
    for r in result["rows"]:
        if r.get("decoder"):
            lines.append(f"transformers decodes with {r['decoder']}; {r['framework']}")
    t = result["targets"]["single"]
    if t["met"] is None:
        lines.append(f"target (1 view, fastest keras-har >= {result['target']}x transformers): not measured")
    else:
        lines.append(f"target (1 view): fastest keras-har setting ({t['fastest']}) = {t['ratio']:.2f}x "
                     f"transformers' pipeline (target >= {result['target']}x): {'MET' if t['met'] else 'NOT MET'}")
    return "\n".join(lines)


def report(result):
    print("\n" + markdown(result))


if __name__ == "__main__":
    sys.exit(main())

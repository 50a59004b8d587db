"""One command that proves `model.fit` on a GPU under JAX and PyTorch and measures it.

    bash scripts/gpu_wheels.sh     # once, where pip works: keras, keras-hub, grain, PyAV -> .whl/
    # on the GPU machine (no network), from the repository root:
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site
    python3 benchmarks/gpu_check.py [--output DIR]      # DIR: $OUT when set, else gpu_check/
    python3 benchmarks/gpu_check.py --smoke             # tiny, on the CPU (the test suite runs it)
    python3 benchmarks/gpu_check.py --report DIR/gpu_check.json   # print a saved run's table again

Phases, each in its own process under its own time limit (a phase that
fails or runs out of time loses only its own results):

- `device`: nvidia-smi's GPU (name, memory, driver), the CPU cores and the
  package versions (jax's and torch's own view of the device come with their
  phases);
- `data`: synthetic 320x240 XVID videos (HMDB51's format; the loader
  benchmark's), and the same videos after `keras-har prepare`;
- `keras_jax`, `keras_torch` (KERAS_BACKEND=jax / torch): VideoMAE-B (random
  weights, 51 classes) under `mixed_bfloat16`, built, compiled and fed by the
  two-phase recipe's own functions (`recipe()` below: its model, its phase-1
  optimizer, schedule, loss and metrics with gradient accumulation 4, its
  loader with Mixup 0.8). It measures training clips/s with `model.fit` on
  batches already on the device, at the largest batch that fits among
  `--batches` (tried from the largest), inference clips/s at batch 32
  (`predict_on_batch`), peak device memory and model FLOPs utilisation
  (analytic FLOPs, benchmarks/speed/configs.py, x3 for a training step); then
  trains through the real loader (grain, the machine's default workers) and
  checks that the variables and the step were on the GPU, that the loss went
  down, and that no loader worker holds GPU memory or a CUDA context (no
  /dev/nvidia* open, no libcuda mapped, not among nvidia-smi's compute
  processes; the training process itself is the control). It reports which
  attention kernel `keras.ops.dot_product_attention` ran (JAX: the cuDNN
  fused call in the lowered program, or XLA's; torch: the SDPA kernel the
  profiler saw);
- `transformers`: `VideoMAEForVideoClassification` (torch, bfloat16 autocast,
  SDPA attention), the same shapes, the same step (soft-target cross-entropy,
  AdamW, clip norm 1.0, accumulation 4), the reference; and the bf16 matmul
  rate (8192^3) that MFU is also given against;
- `loader`: the recipe's loader alone, grain with the machine's default
  workers (14 on 16 cores), clips/s on the synthetic videos and on the
  prepared ones, against the training step's demand.

The JAX phase runs with XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 (alone on the
GPU; JAX's default takes 75%). MFU is given against the H200's dense bf16
peak, 989 TFLOP/s (NVIDIA's datasheet figure, the H100 SXM's; this
workplace's device notes measured 769-798 TFLOP/s on an 8192^3 bf16 matmul),
and against the matmul rate measured in the same run.

Writes DIR/gpu_check.json ({"machine", "phases": {name: {"ok", "elapsed_s",
"result" or "error", ...}}, "targets", "checks"}), DIR/gpu_check.md (the
table) and DIR/gpu_check.log (every phase's stderr). Exit status 0 when every
phase ran and every check passed (the targets are reported, not required).
The whole run stays under `--budget` seconds (480).
"""

import argparse
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
import types

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # loader_speed, machine_info, speed/

NUM_CLASSES = 51
SPEC_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0}  # dense bf16, NVIDIA's datasheets
TARGETS = dict(train_vs_transformers=1.0, inference_vs_transformers=1.2, train_mfu=0.35)
LOG_CHARS = 500_000  # of each phase's output, in gpu_check.log
PACKAGES = ("keras", "keras-hub", "grain", "av", "jax", "jaxlib", "jax-cuda13-plugin", "torch",
            "transformers", "numpy", "opencv-python-headless", "psutil")

# The GPU run and its CPU smoke version: the same phases, smaller numbers.
PROFILES = {
    # lr: the recipe's synthetic-profile rate (1e-3) is for its tiny model; VideoMAE-B from
    # scratch gets DeiT's ViT-B rate for this effective batch (5e-4 per 512 clips; 64 x 4).
    "gpu": dict(model="videomae", batches=(64, 32, 16), infer_batch=32, grad_accum=4, lr=2.5e-4,
                warm_steps=4, timed_steps=12, fit_epochs=16, videos=128, video_frames=40,
                video_size=(240, 320), loader_batch=16, loader_batches=30, matmul=8192,
                infer_calls=10, limits=dict(device=15, data=45, keras_jax=170, keras_torch=110,
                                            transformers=60, loader=60)),
    "smoke": dict(model="tiny", batches=(4, 2), infer_batch=4, grad_accum=2, lr=None, warm_steps=2,
                  timed_steps=2, fit_epochs=8, videos=8, video_frames=24, video_size=(48, 64),
                  loader_batch=2, loader_batches=3, matmul=256, infer_calls=2,
                  limits=dict(device=20, data=60, keras_jax=150, keras_torch=150,
                              transformers=90, loader=90)),
}


def model_config(profile, rec):
    """The VideoMAE config of a profile: the recipe's tiny model at its
    synthetic sizes, or benchmarks/speed/configs.py's VideoMAE-B (transformers'
    VideoMAEConfig() defaults); for the model and its analytic FLOPs."""
    from speed.configs import FULL_CONFIGS, timed_config

    if profile["model"] == "tiny":
        sizes = rec.synthetic_defaults
        return timed_config(rec.architectures["tiny"], sizes["image_size"], sizes["num_frames"])
    return {k: v for k, v in FULL_CONFIGS["videomae"].items() if not k.startswith("decoder_")}


# ---------------------------------------------------------------- the recipe


def recipe():
    """The two-phase recipe's functions this check runs: the one place that
    says where they live."""
    from keras_har.models import VIDEOMAE_ARCHITECTURES
    from keras_har.recipes import get_recipe
    from keras_har.training import experiment

    rec = get_recipe("videomae-two-phase")

    def build_model(args, class_names, config):
        """The recipe's model: a new VideoMAE of the architecture `--preset` names."""
        return rec.build_model(args, class_names)

    def steps_per_epoch(num_videos, batch_size):
        if num_videos < batch_size:
            raise ValueError(f"{num_videos} videos are fewer than one batch of {batch_size}.")
        return num_videos // batch_size

    return types.SimpleNamespace(
        build_parser=rec.build_parser, architectures=VIDEOMAE_ARCHITECTURES,
        synthetic_defaults=rec.synthetic_defaults, build_model=build_model,
        compile_phase=rec.compile_phase, resolve_defaults=rec.resolve_defaults,
        set_precision=experiment.set_precision_and_distribution, make_loader=experiment.make_loader,
        steps_per_epoch=steps_per_epoch,
    )


def recipe_args(rec, profile, config, batch_size, epochs):
    """The recipe's flags for this check (synthetic profile numbers, the
    check's sizes and gradient accumulation, mixed bfloat16), resolved as the
    recipe resolves them (machine defaults for the loader workers)."""
    args = rec.build_parser().parse_args([
        "--preset", "tiny" if profile["model"] == "tiny" else "base", "--num-frames", str(config["num_frames"]),
        "--image-size", str(config["image_size"]), "--batch-size", str(batch_size),
        "--grad-accum", str(profile["grad_accum"]), "--epochs-phase1", str(epochs),
        "--mixed-precision", "--verbose", "0",
    ] + (["--lr-phase1", str(profile["lr"])] if profile["lr"] else []))
    rec.resolve_defaults(args)
    return args


def video_index(root):
    """The videos under `root` with 51 class names (the videos use the first 4)."""
    from loader_speed import video_index as index

    dataset = index(root)
    names = list(dataset.class_names)
    names += [f"unused_{k}" for k in range(len(names), NUM_CLASSES)]
    return types.SimpleNamespace(items=dataset.items, class_names=names, paths=[p for p, _ in dataset.items])


# ---------------------------------------------------------------- probes


def child_pids(pid):
    """Every live descendant of `pid` (from /proc)."""
    parents = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, ppid in parents.items() if ppid == current]
        found += kids
        frontier += kids
    return sorted(found)


def cuda_footprint(pid):
    """What of the GPU process `pid` holds: open /dev/nvidia* files, whether
    libcuda is mapped (a CUDA context was created)."""
    devices, mapped = set(), False
    with contextlib.suppress(OSError):
        for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("/dev/nvidia"):
                    devices.add(target)
    with contextlib.suppress(OSError):
        mapped = "libcuda.so" in pathlib.Path(f"/proc/{pid}/maps").read_text()
    return {"nvidia_files": sorted(devices), "libcuda_mapped": mapped}


def nvidia_smi(query, kind="gpu"):
    """Rows of `nvidia-smi --query-<kind>=<query>` (None without nvidia-smi)."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-{kind}={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return [[f.strip() for f in line.split(",")] for line in out.stdout.strip().splitlines() if line.strip()]


def worker_gpu_use():
    """The loader workers (this process's descendants) against the GPU: their
    CUDA footprint, nvidia-smi's compute processes, and this process's own
    footprint as the control."""
    workers = child_pids(os.getpid())  # the grain workers (and multiprocessing's resource tracker)
    apps = nvidia_smi("pid,used_memory", kind="compute-apps")
    footprints = {pid: cuda_footprint(pid) for pid in workers}
    on_gpu = [pid for pid, f in footprints.items() if f["nvidia_files"] or f["libcuda_mapped"]]
    listed = [int(row[0]) for row in apps or [] if row and row[0].isdigit()]
    return {"workers": workers, "workers_touching_cuda": on_gpu,
            "workers_listed_by_nvidia_smi": [p for p in workers if p in listed],
            "compute_apps": apps, "trainer": cuda_footprint(os.getpid()),
            "trainer_listed_by_nvidia_smi": os.getpid() in listed}


def attention_implementation(layer, x):
    """Which attention kernel `layer` (a VideoMAEAttention) runs on `x`."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        text = jax.jit(lambda t: layer(t)).lower(x).as_text()
        if "cudnn$fmha" in text or "__cudnn$fmha" in text:
            return "cuDNN fused attention (jax.nn.dot_product_attention, implementation='cudnn')"
        return "XLA (dot_general + softmax; no fused attention kernel)"
    if backend == "torch":
        return torch_sdpa_kernel(lambda: layer(x))
    return "unknown"


SDPA_OPS = {  # PyTorch's scaled_dot_product_attention back-ends, by their aten op
    "aten::_scaled_dot_product_flash_attention": "flash (SDPA FLASH_ATTENTION)",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash for CPU (SDPA)",
    "aten::_scaled_dot_product_cudnn_attention": "cuDNN (SDPA CUDNN_ATTENTION)",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient (SDPA EFFICIENT_ATTENTION)",
    "aten::_scaled_dot_product_attention_math": "math (SDPA MATH: no fused kernel)",
}


def torch_sdpa_kernel(fn):
    """The SDPA back-end(s) the profiler sees while `fn()` runs."""
    import torch

    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    names = {event.key for event in prof.key_averages()}
    found = [label for op, label in SDPA_OPS.items() if op in names]
    return ", ".join(found) if found else "no scaled_dot_product_attention call (explicit matmuls)"


# ---------------------------------------------------------------- phases


def default_workers():
    """The loader workers a training run on this machine gets by default
    (`keras_har.training.machine_defaults`; a GPU counts as an accelerator)."""
    from keras_har.training import machine_defaults

    return machine_defaults.loader_workers({"platform": "gpu"} if nvidia_smi("name") else None)


def phase_device(config):
    gpus = nvidia_smi("name,memory.total,driver_version")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from machine_info import cpu_name, memory_gb

    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    shm = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None  # grain's batches pass through it
    return {"gpus": [{"name": g[0], "memory_mib": g[1], "driver": g[2]} for g in gpus or []],
            "dev_shm_gib": round(shm.f_frsize * shm.f_blocks / 2**30, 1) if shm else None,
            "cpu": cpu_name(), "cores_available": cores, "memory_gb": memory_gb(),
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions}


def phase_data(config):
    """Synthetic videos, then `keras-har prepare`d copies (the real command)."""
    from loader_speed import write_videos

    profile, root = config["profile"], pathlib.Path(config["data_dir"])
    height, width = profile["video_size"]
    start = time.perf_counter()
    write_videos(root / "raw", profile["videos"], profile["video_frames"], height=height, width=width)
    written = time.perf_counter() - start
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "keras_har.cli", "prepare", str(root / "raw"),
                          str(root / "prepared"), "--workers", str(default_workers())],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"keras-har prepare failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return {"videos": profile["videos"], "frames_per_video": profile["video_frames"],
            "size": f"{width}x{height}", "codec": "XVID .avi", "write_s": round(written, 1),
            "prepare_s": round(time.perf_counter() - start, 1), "prepare_output": out.stdout.strip()[-300:]}


class _Saver:
    """The phase's result dict, written to its file after every change (a
    killed phase keeps what it measured)."""

    def __init__(self, path):
        self.path, self.data = pathlib.Path(path), {}

    def __setitem__(self, key, value):
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=1, default=str))

    def __getitem__(self, key):
        return self.data[key]


def backend_device_info():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return {"framework": f"jax {jax.__version__}", "default_backend": jax.default_backend(),
                "devices": [str(d) for d in jax.devices()], "kind": jax.devices()[0].device_kind}
    import torch

    cuda = torch.cuda.is_available()
    return {"framework": f"torch {torch.__version__} (CUDA {torch.version.cuda})",
            "default_backend": "gpu" if cuda else "cpu",
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else ["cpu"],
            "kind": torch.cuda.get_device_name(0) if cuda else "cpu"}


def device_memory():
    """(peak bytes, reset function) of the backend's device allocator; None on a CPU."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        stats = jax.local_devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use"), lambda: None
    import torch

    if not torch.cuda.is_available():
        return None, lambda: None
    return torch.cuda.max_memory_allocated(), torch.cuda.reset_peak_memory_stats


def variable_platform(model):
    """Where the model's first variable lives: "gpu", "tpu" or "cpu"."""
    import keras

    value = model.trainable_variables[0].value
    if keras.backend.backend() == "jax":
        return next(iter(value.devices())).platform
    return {"cuda": "gpu"}.get(value.device.type, value.device.type)


def is_oom(error):
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def free_device_memory():
    import gc

    import keras

    gc.collect()
    if keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def phase_keras(config):
    """The recipe's training step and inference on this process's backend:
    for the largest batch that fits, `model.fit` through the real loader from
    fresh weights (the loss must go down), then the same compiled step on
    batches already on the device (the step's own clips/s), then inference."""
    import numpy as np

    import keras
    from speed.configs import model_flops

    profile, out = config["profile"], _Saver(config["result_path"])
    deadline = time.monotonic() + config["limit_s"] - 5
    out["device"] = backend_device_info()
    rec = recipe()
    mcfg = model_config(profile, rec)
    dataset = video_index(pathlib.Path(config["data_dir"]) / "raw")
    flops = model_flops("videomae", mcfg)
    out["model"] = dict(mcfg, num_classes=NUM_CLASSES, forward_gflop_per_clip=round(flops / 1e9, 2))
    warm, timed, epochs = profile["warm_steps"], profile["timed_steps"], profile["fit_epochs"]

    model, tried = None, []
    for batch in profile["batches"]:
        steps_per_epoch = rec.steps_per_epoch(len(dataset.items), batch)
        args = recipe_args(rec, profile, mcfg, batch, epochs=epochs)
        free_device_memory()
        rec.set_precision(args)
        model = rec.build_model(args, dataset.class_names, mcfg)
        # One schedule over the loader run and the timed steps after it.
        rec.compile_phase(model, args, 1, steps_per_epoch + (warm + timed) // epochs + 1)
        try:
            fit = fit_through_loader(rec, args, model, dataset, deadline)
        except Exception as e:  # noqa: BLE001 - out of memory is told apart from the rest below
            if not is_oom(e):
                raise
            tried.append({"batch": batch, "fits": False})
            out["batches_tried"] = tried
            model = None
            continue
        tried.append({"batch": batch, "fits": True})
        out["batches_tried"] = tried
        out["workers_gpu"] = fit.pop("workers_gpu")
        out["fit_through_loader"] = fit
        break
    if model is None:
        raise RuntimeError(f"no batch of {profile['batches']} fitted in the device's memory ({tried})")

    # The same compiled step on device-resident batches (one from the loader).
    with rec.make_loader(args, dataset, model, training=True, mixup_alpha=args.mixup_alpha,
                         cutmix_alpha=args.cutmix_alpha, workers=0, epochs=1) as loader:
        x, y = next(iter(loader.for_fit()))[:2]
    xs, ys = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)

    def on_device(n):
        for _ in range(n):
            yield xs, ys

    # keras-hub's Task.fit takes datasets and arrays (arrays go through numpy);
    # Keras' own fit takes the device batches. Float frames pass the model's
    # preprocessor unchanged, so this is the same compiled train step.
    fit = functools.partial(keras.Model.fit, model, verbose=0)
    fit(on_device(warm), steps_per_epoch=warm)
    start = time.perf_counter()
    fit(on_device(timed), steps_per_epoch=timed)  # ends with the logs on the host
    elapsed = time.perf_counter() - start
    peak, _ = device_memory()
    rate = batch * timed / elapsed
    out["train"] = {"batch": batch, "clips_per_s": round(rate, 2), "step_s": round(elapsed / timed, 4),
                    "peak_device_gib": round(peak / 2**30, 2) if peak else None,
                    "achieved_tflops": round(rate * 3 * flops / 1e12, 2), "grad_accum": args.grad_accum,
                    "optimizer": type(model.optimizer).__name__,
                    "dtype_policy": keras.config.dtype_policy().name, "workers": args.workers,
                    "variables_on": variable_platform(model)}

    # Which attention kernel keras.ops.dot_product_attention runs, at these shapes.
    attention = model.backbone.get_layer("transformer_layer_0").attention
    tokens = (mcfg["num_frames"] // mcfg["tubelet_size"]) * (mcfg["image_size"] // mcfg["patch_size"]) ** 2
    probe = keras.ops.cast(keras.random.normal((1, tokens, mcfg["hidden_size"])), attention.compute_dtype)
    out["attention"] = attention_implementation(attention, probe)

    # Inference at the profile's batch.
    n = profile["infer_batch"]
    clips = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal(
        (n, mcfg["num_frames"], mcfg["image_size"], mcfg["image_size"], 3)).astype("float32"))
    for _ in range(2):
        model.predict_on_batch(clips)
    start, calls = time.perf_counter(), 0
    while calls < profile["infer_calls"] and (calls == 0 or time.monotonic() < deadline):
        model.predict_on_batch(clips)  # returns numpy: synchronised
        calls += 1
    out["inference"] = {"batch": n, "clips_per_s": round(n * calls / (time.perf_counter() - start), 2)}
    return out.data


def fit_through_loader(rec, args, model, dataset, deadline):
    """`model.fit` through the recipe's training loader (Mixup, grain workers)
    for `args.epochs_phase1` epochs: clips/s after the first epoch (which
    compiles), the per-epoch losses, and the workers' GPU use seen mid-run."""
    import numpy as np

    import keras

    marks, probes = [], {}

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks.append(time.perf_counter())  # the logs are on the host by now
            if epoch == 1:
                probes["workers_gpu"] = worker_gpu_use()
            if time.monotonic() > deadline - 60:  # leave time for the timed steps and inference
                self.model.stop_training = True

    loader = rec.make_loader(args, dataset, model, training=True, mixup_alpha=args.mixup_alpha,
                             cutmix_alpha=args.cutmix_alpha)
    loader.epochs = args.epochs_phase1
    with loader:
        start = time.perf_counter()
        history = model.fit(loader.for_fit(), epochs=args.epochs_phase1, steps_per_epoch=loader.steps_per_epoch,
                            shuffle=False, verbose=0, callbacks=[Probe()])
    losses = [float(v) for v in history.history["loss"]]
    quarter = max(1, len(losses) // 4)
    first, last = float(np.mean(losses[:quarter])), float(np.mean(losses[-quarter:]))
    steady = (len(marks) - 1) * loader.steps_per_epoch * args.batch_size / (marks[-1] - marks[0]) if len(marks) > 1 else None
    return {"batch": args.batch_size, "workers": args.workers, "epochs": len(losses),
            "steps": len(losses) * loader.steps_per_epoch, "first_epoch_s": round(marks[0] - start, 1),
            "clips_per_s": round(steady, 2) if steady else None,
            "losses": [round(v, 4) for v in losses], "loss_first_quarter": round(first, 4),
            "loss_last_quarter": round(last, 4), "loss_went_down": bool(last < first),
            "mixup_alpha": args.mixup_alpha, "learning_rate": args.lr_phase1,
            "workers_gpu": probes.get("workers_gpu")}


def phase_transformers(config):
    """transformers' VideoMAEForVideoClassification: the same step and shapes."""
    import torch

    from speed.torch_references import TorchReference

    profile, out = config["profile"], _Saver(config["result_path"])
    deadline = time.monotonic() + config["limit_s"] - 5
    mcfg = model_config(profile, recipe())
    ref = TorchReference("transformers", "eager")
    out["device"] = ref.device()
    out["matmul_bf16_tflops"] = round(ref.matmul_peak("bfloat16", profile["matmul"]) / 1e3, 4)
    cfg = dict(mcfg, decoder_hidden_size=mcfg["hidden_size"], decoder_num_hidden_layers=1,
               decoder_num_attention_heads=mcfg["num_heads"], decoder_intermediate_size=mcfg["intermediate_size"])
    ref.build("videomae", cfg, "mixed_bfloat16")
    out["attn_implementation"] = getattr(ref.net.config, "_attn_implementation", None)
    out["versions"] = ref.framework_version()
    from speed.configs import model_flops

    train_flops = 3 * model_flops("videomae", mcfg)
    accum = profile["grad_accum"]
    fused = {"fused": True} if ref.dev == "cuda" else {}
    chosen, tried = None, []
    for batch in profile["batches"]:
        if chosen is not None or time.monotonic() > deadline - 15:
            break
        if ref.dev == "cuda":
            torch.cuda.empty_cache()
        ref.compile(True)
        videos = ref.videos(mcfg, batch)
        targets = torch.softmax(torch.randn(batch, NUM_CLASSES, generator=torch.Generator().manual_seed(1)), -1)
        targets = targets.to(ref.dev)
        opt = torch.optim.AdamW(ref.net.parameters(), lr=1e-3, weight_decay=0.05, **fused)
        micro = [0]

        def step():
            with ref._autocast():
                logits = ref.forward(videos)
            loss = torch.nn.functional.cross_entropy(logits.float(), targets) / accum
            loss.backward()
            micro[0] += 1
            if micro[0] % accum == 0:
                torch.nn.utils.clip_grad_norm_(ref.net.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
            return loss

        try:
            if ref.dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for _ in range(profile["warm_steps"]):
                step()
            ref.sync()
            start = time.perf_counter()
            for _ in range(profile["timed_steps"]):
                loss = step()
            loss.item()
            ref.sync()
            elapsed = time.perf_counter() - start
        except torch.OutOfMemoryError:
            tried.append({"batch": batch, "fits": False})
            ref.net.zero_grad(set_to_none=True)
            opt = None  # its state and the gradients go before the next batch
            continue
        rate = batch * profile["timed_steps"] / elapsed
        peak = ref.device_peak_mb()
        chosen = {"batch": batch, "clips_per_s": round(rate, 2), "step_s": round(elapsed / profile["timed_steps"], 4),
                  "peak_device_gib": round(peak / 1024, 2) if peak else None,
                  "achieved_tflops": round(rate * train_flops / 1e12, 2), "grad_accum": accum,
                  "optimizer": "torch.optim.AdamW" + (" (fused)" if fused else "")}
        tried.append({"batch": batch, "fits": True})
        out["batches_tried"] = tried
        out["train"] = chosen
        opt = None
    ref.compile(False)
    out["attention"] = torch_sdpa_kernel(ref.inference_fn(ref.videos(mcfg, 1)))
    n = profile["infer_batch"]
    run = ref.inference_fn(ref.videos(mcfg, n))
    for _ in range(2):
        run()
    ref.sync()
    start, calls = time.perf_counter(), 0
    while calls < profile["infer_calls"] and time.monotonic() < deadline:
        run()
        calls += 1
    ref.sync()
    out["inference"] = {"batch": n, "clips_per_s": round(n * calls / (time.perf_counter() - start), 2)}
    return out.data


def phase_loader(config):
    """The recipe's loader alone (no model): raw and prepared videos."""
    from loader_speed import time_batches

    from keras_har.data.normalization import IMAGENET_MEAN, IMAGENET_STD

    profile, out = config["profile"], _Saver(config["result_path"])
    rec = recipe()
    mcfg = model_config(profile, rec)
    stand_in = types.SimpleNamespace(image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, num_classes=NUM_CLASSES)
    for source in ("raw", "prepared"):
        dataset = video_index(pathlib.Path(config["data_dir"]) / source)
        args = recipe_args(rec, profile, mcfg, profile["loader_batch"], epochs=1)
        args.workers = default_workers()  # what a training run on this machine gets
        with rec.make_loader(args, dataset, stand_in, training=True, mixup_alpha=args.mixup_alpha,
                             cutmix_alpha=args.cutmix_alpha, epochs=None) as loader:
            rate = time_batches(loader.for_fit(), profile["loader_batch"], profile["loader_batches"],
                                warmup=args.workers + 1)
        out[source] = {"workers": args.workers, "batch": profile["loader_batch"], "clips_per_s": round(rate, 2)}
    return out.data


PHASES = {"device": phase_device, "data": phase_data, "keras_jax": phase_keras, "keras_torch": phase_keras,
          "transformers": phase_transformers, "loader": phase_loader}


def worker_main(spec_path):
    config = json.loads(pathlib.Path(spec_path).read_text())
    result = PHASES[config["phase"]](config)
    pathlib.Path(config["result_path"]).write_text(json.dumps(result, indent=1, default=str))
    return 0


# ---------------------------------------------------------------- the parent


def phase_env(phase):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    if phase == "keras_jax":
        env["KERAS_BACKEND"] = "jax"
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")  # alone on the GPU
    elif phase in ("keras_torch", "transformers"):
        env["KERAS_BACKEND"] = "torch"
    else:  # no model (Keras still needs a backend: its default, TensorFlow, may be absent); not on the GPU
        env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    return env


def run_phase(phase, config, limit_s, log):
    """Runs one phase in a child process; its result, or what it saved before
    it failed or ran out of time."""
    with tempfile.TemporaryDirectory(prefix=f"gpu_check_{phase}_") as tmp:
        spec = pathlib.Path(tmp) / "spec.json"
        result_path = pathlib.Path(tmp) / "result.json"
        spec.write_text(json.dumps(dict(config, phase=phase, result_path=str(result_path), limit_s=limit_s)))
        start = time.perf_counter()
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen([sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", str(spec)],
                                    env=phase_env(phase), stdout=err, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=limit_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)  # the phase and its loader workers
                rc, timed_out = proc.wait(), True
            err.seek(0)
            output = err.read()
        elapsed = time.perf_counter() - start
        log.write(f"===== {phase} (rc {rc}, {elapsed:.1f} s) =====\n{output[-LOG_CHARS:]}\n")
        log.flush()
        entry = {"ok": rc == 0 and not timed_out, "elapsed_s": round(elapsed, 1), "limit_s": limit_s}
        if result_path.exists():
            with contextlib.suppress(ValueError):
                entry["result"] = json.loads(result_path.read_text())
        if timed_out:
            entry["error"] = f"ran past its {limit_s:.0f} s limit"
        elif rc != 0:
            tail = [line for line in output.strip().splitlines() if line.strip()]
            entry["error"] = f"exit {rc}: " + (tail[-1][:400] if tail else "no output")
    return entry


def spec_peak_tflops(gpu_name):
    return next((v for k, v in SPEC_PEAK_TFLOPS.items() if gpu_name and k in gpu_name), None)


def summarise(report, smoke):
    """Checks (must hold) and targets (reported) from the phases' results."""
    phases = report["phases"]
    res = {name: p.get("result") or {} for name, p in phases.items()}
    checks, targets = [], []

    def check(name, passed, detail=""):
        checks.append({"name": name, "passed": bool(passed), "detail": detail})

    for name, p in phases.items():
        check(f"phase {name} ran", p["ok"], p.get("error", ""))
    gpu_name = next(iter(res.get("device", {}).get("gpus", [])), {}).get("name")
    expected = "gpu" if gpu_name or not smoke else "cpu"  # the smoke run goes where it can
    spec = None if smoke else spec_peak_tflops(gpu_name)
    matmul = res.get("transformers", {}).get("matmul_bf16_tflops")
    for backend in report["backends"]:
        r = res.get(f"keras_{backend}", {})
        train, fit = r.get("train"), r.get("fit_through_loader")
        if not train:
            continue
        on = r.get("device", {}).get("default_backend")
        check(f"{backend}: the step ran on the {expected}",
              train.get("variables_on") == expected and on == expected,
              f"variables on {train.get('variables_on')}, backend default {on}")
        if fit:
            check(f"{backend}: the loss went down through the real loader", fit["loss_went_down"],
                  f"{fit['loss_first_quarter']} -> {fit['loss_last_quarter']} over {fit['steps']} steps")
        workers = r.get("workers_gpu")
        if not smoke:
            ok = bool(workers and workers["workers"] and not workers["workers_touching_cuda"]
                      and not workers["workers_listed_by_nvidia_smi"] and workers["trainer"]["libcuda_mapped"])
            check(f"{backend}: loader workers hold no GPU memory or CUDA context", ok,
                  json.dumps(workers)[:300] if workers else "not probed")
        for peak_name, peak in (("spec", spec), ("matmul", matmul)):
            if peak:
                train[f"mfu_vs_{peak_name}"] = round(train["achieved_tflops"] / peak, 4)
    ref = res.get("transformers", {})
    if ref.get("device"):
        check(f"transformers ran on the {expected}", ref["device"].startswith("cuda") == (expected == "gpu"),
              ref["device"])
    ours = {b: res.get(f"keras_{b}", {}) for b in report["backends"]}

    def best(kind):
        rates = {b: r[kind]["clips_per_s"] for b, r in ours.items() if r.get(kind)}
        return max(rates.items(), key=lambda kv: kv[1]) if rates else (None, None)

    for kind, key in (("train", "train_vs_transformers"), ("inference", "inference_vs_transformers")):
        backend, rate = best(kind)
        if rate and ref.get(kind):
            ratio = rate / ref[kind]["clips_per_s"]
            targets.append({"name": f"{kind}: keras-har's faster backend ({backend}) vs transformers "
                                    f">= {TARGETS[key]}x", "value": round(ratio, 3), "met": ratio >= TARGETS[key]})
    backend, _ = best("train")
    if backend and ours[backend]["train"].get("mfu_vs_spec") is not None:
        mfu = ours[backend]["train"]["mfu_vs_spec"]
        targets.append({"name": f"train MFU ({backend}, vs {spec:.0f} TFLOP/s bf16 spec) >= {TARGETS['train_mfu']:.0%}",
                        "value": mfu, "met": mfu >= TARGETS["train_mfu"]})
    demand = best("train")[1]
    loader = res.get("loader", {})
    if demand:
        for source in ("raw", "prepared"):
            if loader.get(source):
                rate = loader[source]["clips_per_s"]
                targets.append({"name": f"loader ({source} videos, {loader[source]['workers']} workers) >= the "
                                        f"training step's demand ({demand:.1f} clips/s)",
                                "value": rate, "met": rate >= demand})
    report["checks"], report["targets"] = checks, targets
    report["passed"] = all(c["passed"] for c in checks)
    return report


def _cell(value, fmt="{}"):
    return "-" if value is None else fmt.format(value)


def markdown(report):
    """The table, the checks and the targets, as markdown."""
    res = {name: p.get("result") or {} for name, p in report["phases"].items()}
    dev = res.get("device", {})
    gpus = dev.get("gpus") or [{"name": "no GPU (nvidia-smi absent)"}]
    g = gpus[0]
    versions = ", ".join(f"{k} {v}" for k, v in dev.get("versions", {}).items())
    lines = [f"**{g['name']}**" + (f", {g.get('memory_mib')} MiB, driver {g.get('driver')}" if "driver" in g else "")
             + f"; {dev.get('cpu')}, {dev.get('cores_available')} cores; Python {dev.get('python')}; {versions}."
             + (" Smoke run (tiny model, CPU)." if report.get("smoke") else ""), "",
             "| | train batch | train clips/s | MFU (spec / matmul) | inference clips/s (batch) "
             "| peak device GiB | through the loader clips/s | loss first -> last quarter | attention |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [(f"keras-har {b}", res.get(f"keras_{b}", {})) for b in report["backends"]]
    rows.append(("transformers (torch, SDPA)", res.get("transformers", {})))
    for label, r in rows:
        train, inf, fit = r.get("train") or {}, r.get("inference") or {}, r.get("fit_through_loader") or {}
        mfu = " / ".join(_cell(train.get(k), "{:.1%}") for k in ("mfu_vs_spec", "mfu_vs_matmul"))
        lines.append(
            f"| {label} | {_cell(train.get('batch'))} | {_cell(train.get('clips_per_s'), '{:.1f}')} | {mfu} | "
            f"{_cell(inf.get('clips_per_s'), '{:.1f}')} ({_cell(inf.get('batch'))}) | "
            f"{_cell(train.get('peak_device_gib'))} | {_cell(fit.get('clips_per_s'), '{:.1f}')} | "
            f"{_cell(fit.get('loss_first_quarter'))} -> {_cell(fit.get('loss_last_quarter'))} | "
            f"{r.get('attention', '-')} |")
    loader = res.get("loader", {})
    data = res.get("data", {})
    lines += ["", f"Loader alone (grain; {data.get('videos', '-')} synthetic {data.get('size', '-')} "
                  f"{data.get('codec', '')} videos, and the same after `keras-har prepare`):", "",
              "| source | workers | clips/s |", "|---|---|---|"]
    for source in ("raw", "prepared"):
        r = loader.get(source) or {}
        lines.append(f"| {source} | {_cell(r.get('workers'))} | {_cell(r.get('clips_per_s'), '{:.1f}')} |")
    matmul = res.get("transformers", {}).get("matmul_bf16_tflops")
    lines += ["", f"MFU: analytic model FLOPs (x3 for a training step) over the bf16 peak: spec "
                  f"{_cell(None if report.get('smoke') else spec_peak_tflops(g.get('name')))} TFLOP/s "
                  f"(NVIDIA datasheet, dense), matmul {_cell(matmul)} TFLOP/s (measured in this run).", "",
              "Targets:", ""]
    lines += [f"- [{'x' if t['met'] else ' '}] {t['name']}: {t['value']}" for t in report.get("targets", [])] or ["- none measured"]
    lines += ["", "Checks:", ""]
    lines += [f"- {'PASS' if c['passed'] else 'FAIL'} {c['name']}" + (f" ({c['detail']})" if c["detail"] else "")
              for c in report.get("checks", [])]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", help="where gpu_check.json / .md / .log go (default: $OUT, else gpu_check/)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few steps, on the CPU")
    parser.add_argument("--backends", default="jax,torch", help="Keras backends to run (jax,torch; 'none')")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip transformers' reference (skipped anyway when transformers is absent)")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check")
    parser.add_argument("--limit", action="append", default=[], metavar="PHASE=SECONDS",
                        help="another time limit for a phase (device, data, keras_jax, keras_torch, "
                             "transformers, loader)")
    parser.add_argument("--report", metavar="JSON", help="print a saved gpu_check.json's table and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.report:
        try:
            print(markdown(json.loads(pathlib.Path(args.report).read_text())), end="")
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"--report {args.report}: not a gpu_check.json ({exc})")
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip() and b.strip() != "none"]
    for b in backends:
        if b not in ("jax", "torch"):
            parser.error(f"--backends: {b!r} is not jax or torch")
    output = pathlib.Path(args.output or os.environ.get("OUT") or "gpu_check")
    output.mkdir(parents=True, exist_ok=True)
    profile = PROFILES["smoke" if args.smoke else "gpu"]
    limits = dict(profile["limits"])
    for item in args.limit:
        name, _, seconds = item.partition("=")
        try:
            limits[name] = float(seconds) if name in limits else parser.error(f"--limit: no phase {name!r}")
        except ValueError:
            parser.error(f"--limit {item}: want PHASE=SECONDS")
    phases = ["device", "data"] + [f"keras_{b}" for b in backends]
    if args.reference and importlib.util.find_spec("transformers") is not None:
        phases.append("transformers")
    phases.append("loader")

    report = {"smoke": args.smoke, "backends": backends, "profile": profile, "phases": {},
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_check_data_") as data_dir, \
            open(output / "gpu_check.log", "w") as log:
        config = {"profile": profile, "data_dir": data_dir}
        for phase in phases:
            left = args.budget - (time.monotonic() - start)
            limit = min(limits[phase], left)
            if left < 10:
                report["phases"][phase] = {"ok": False, "elapsed_s": 0, "error": "no time left in the budget"}
                continue
            print(f"[{time.monotonic() - start:5.0f} s] {phase} (limit {limit:.0f} s)", flush=True)
            report["phases"][phase] = run_phase(phase, config, limit, log)
            entry = report["phases"][phase]
            print(f"        {'ok' if entry['ok'] else 'FAILED: ' + entry.get('error', '')} "
                  f"({entry['elapsed_s']} s)", flush=True)
            summarise(report, args.smoke)
            (output / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    report["wall_s"] = round(time.monotonic() - start, 1)
    summarise(report, args.smoke)
    (output / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    table = markdown(report)
    (output / "gpu_check.md").write_text(table)
    print(table, end="")
    print(f"wrote {output}/gpu_check.json, gpu_check.md, gpu_check.log ({report['wall_s']} s)")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

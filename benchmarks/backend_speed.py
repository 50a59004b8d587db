"""Speed of keras-har's models per Keras backend, beside the PyTorch references.

Times, on this machine, in one run:

- `videomae`: `VideoMAEClassifier` with VideoMAE-Base (transformers'
  `VideoMAEConfig()` defaults: 16 x 224 x 224, tubelet 2, patch 16, 12 layers,
  hidden 768, 86M parameters; random init) against transformers'
  `VideoMAEForVideoClassification` (eager, sdpa attention);
- `vit`: `MeanPooledViTClassifier` with a keras-hub ViT-S/16 per frame against
  timm's `vit_small_patch16_224` per frame + frame mean + Linear;

each under jax, torch and tensorflow (every backend / reference in its own
subprocess: Keras fixes its backend per process), in float32 and mixed
bfloat16 (the references: float32, bfloat16 autocast, and the whole model cast
to bfloat16 for inference), for inference (batch 1 and 4) and a training step
(batch 2, AdamW with global clip norm 1.0, cross-entropy).

    python benchmarks/backend_speed.py [--quick] [--json PATH]
        [--backends jax,torch,tensorflow] [--models videomae,vit] [--repeats N]
        [--variants torch:compile,tensorflow:graph] [--no-reference]
        [--allocator auto|system|PATH] [--optimizer adamw|grouped]

Columns: clips/s, the ratio to the reference (transformers / timm float32 eager,
same mode and batch), achieved GFLOP/s (analytic model FLOPs: patch embedding
+ per layer 8*N*d^2 (qkv + proj) + 4*N^2*d (attention) + 4*N*d*m (MLP); x3 for
a training step) and its fraction of the same framework's measured matmul peak
for that dtype (a 2048^2 matmul timed in every worker, compiled the way the
row is: XLA for jax and tensorflow `xla`; the best reading of the run per
framework, kernels and dtype, as one reading varies up to 2x), peak RSS of the subprocess (and the
device's peak memory on a GPU), and first-call compile time (first call minus
steady state). After the table, the issue's targets for VideoMAE-B are checked
against the rows of the same run ("Targets"; also under "targets" in --json).

Keras inference runs `model.predict_on_batch` after `model.compile(jit_compile=...)`
(the compiled predict function; one host transfer of the logits per call);
training times `model.train_on_batch` (`--optimizer grouped` uses the recipes'
`build_adamw`, i.e. `GroupedAdamW`, instead of `keras.optimizers.AdamW`).
`jit_compile` per backend ("variant"): jax `xla` (always jitted), tensorflow
`xla` (default) or `graph` (tf.function without XLA: TensorFlow's oneDNN
kernels, the fast bfloat16 path on x86), torch `eager` (default) or `compile`
(torch.compile).

Worker processes (all of them, the references included) run with
tcmalloc preloaded when it is installed (`--allocator auto`; Debian/Ubuntu:
`apt-get install libtcmalloc-minimal4`): XLA:CPU allocates its temporary
buffers (12 GB for a VideoMAE-B training step) afresh for every call, and with
glibc's malloc every call then page-faults all of it back in (~40% of a JAX
training step in the kernel). `--allocator system` turns this off.

Progress: a line per measured row on stderr as it comes. Full runs use one
process per setting (for VideoMAE one for inference and one for training, so
each row's peak RSS is its own); `--quick` one per (impl, backend, variant) to
save start-up time.

`--json` writes {"machine": {...}, "results": [{"model", "impl", "backend",
"dtype", "mode", "batch_size", "clips_per_s", "ratio_vs_reference", ...}],
"targets": [...]}; `--report PATH` prints a saved one's table again. `--quick`
uses tiny configs and finishes in well under 2 minutes. Runs on a GPU
unchanged when the framework finds one (each row reports its device; the
CPU-only settings -- allocator, XLA:CPU flags -- do not matter there).
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from machine_info import cpu_flags, cpu_name, load_average, memory_gb  # beside this script

NUM_CLASSES = 51
RESULT_TAG = "@@BACKEND_SPEED@@ "
INFER_BATCHES = (1, 4)
TRAIN_BATCH = 2
KEYS = ("model", "impl", "backend", "variant", "dtype")

# transformers' VideoMAEConfig() defaults (VideoMAE-Base) and timm's ViT-S/16.
FULL_CONFIGS = {
    "videomae": dict(image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=768,
                     num_layers=12, num_heads=12, intermediate_size=3072),
    "vit": dict(image_size=224, patch_size=16, num_frames=16, hidden_size=384, num_layers=12,
                num_heads=6, intermediate_size=1536),
}
QUICK_CONFIGS = {
    "videomae": dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=64,
                     num_layers=2, num_heads=4, intermediate_size=128),
    "vit": dict(image_size=32, patch_size=8, num_frames=4, hidden_size=64, num_layers=2,
                num_heads=4, intermediate_size=128),
}
REFERENCE_IMPL = {"videomae": "transformers", "vit": "timm"}
DEFAULT_VARIANT = {"jax": "xla", "tensorflow": "xla", "torch": "eager"}
# Extra variants (--variants backend:name): torch `compile`, tensorflow `graph`, and
# `<variant>+einsum_attention` (VideoMAE attention as explicit einsums, patched in).

# Where tcmalloc usually lives (Debian / Ubuntu / Fedora), for --allocator auto.
TCMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)


# --------------------------------------------------------------------------- FLOPs


def model_flops(model, cfg):
    """Analytic forward FLOPs of one clip (multiply-add = 2 FLOPs)."""
    d, m, layers, p = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_layers"], cfg["patch_size"]
    grid = (cfg["image_size"] // p) ** 2
    if model == "videomae":
        patches = (cfg["num_frames"] // cfg["tubelet_size"]) * grid
        tokens, patch_in, copies = patches, cfg["tubelet_size"] * p * p * 3, 1
    else:  # one image ViT per frame, with a class token
        patches, tokens, patch_in, copies = grid, grid + 1, p * p * 3, cfg["num_frames"]
    per_layer = 4 * tokens * d * d * 2 + 2 * tokens * tokens * d * 2 + 2 * tokens * d * m * 2
    head = 2 * d * NUM_CLASSES
    return copies * (2 * patches * patch_in * d + layers * per_layer) + head


# --------------------------------------------------------------------------- worker


def _max_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_calls(fn, repeats, budget_s, sync=lambda: None):
    """(first call seconds, steady-state median seconds, timed calls)."""
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    times = []
    spent = 0.0
    while len(times) < repeats and (not times or spent < budget_s):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return first, statistics.median(times), len(times)


class KerasImpl:
    """Builds and times a keras-har model under the process's Keras backend."""

    def __init__(self, backend, variant, optimizer="adamw"):
        self.backend, self.variant, self.optimizer = backend, variant, optimizer
        if backend == "torch" or variant.startswith("compile"):
            import torch._dynamo  # noqa: F401  (before TensorFlow: see the module doc of tests/conftest.py)
        import keras

        self.keras = keras
        if "einsum_attention" in variant:
            patch_einsum_attention()

    @property
    def jit(self):
        return self.variant.split("+")[0] in ("xla", "compile")

    def device(self):
        if self.backend == "jax":
            import jax

            dev = jax.devices()[0]
            return f"{dev.platform}:{getattr(dev, 'device_kind', '')}"
        if self.backend == "torch":
            import torch

            return "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"gpu:{gpus[0].name}" if gpus else "cpu"

    def device_peak_mb(self):
        """Peak accelerator memory of this process (None on the CPU)."""
        try:
            if self.backend == "jax":
                import jax

                dev = jax.devices()[0]
                if dev.platform == "cpu":
                    return None
                return (dev.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20
            if self.backend == "torch":
                import torch

                return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
            import tensorflow as tf

            if not tf.config.list_physical_devices("GPU"):
                return None
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        except Exception:  # noqa: BLE001 - a statistic, not a result
            return None

    def framework_version(self):
        import importlib

        mod = importlib.import_module(self.backend)
        return f"keras {self.keras.__version__}, {self.backend} {mod.__version__}"

    def matmul_peak(self, dtype, size):
        """Best GFLOP/s of a size^2 matmul in this framework and dtype, compiled
        the way the rows are (XLA for jax and tensorflow `xla`)."""
        import numpy as np

        a = np.random.default_rng(0).standard_normal((size, size)).astype("float32")
        if self.backend == "jax":
            import jax
            import jax.numpy as jnp

            x = jnp.asarray(a, dtype=dtype)
            f = jax.jit(lambda u, v: u @ v)
            run, sync = (lambda: f(x, x).block_until_ready()), (lambda: None)
        elif self.backend == "torch":
            import torch

            dev = "cuda" if torch.cuda.is_available() else "cpu"
            x = torch.as_tensor(a, device=dev).to(getattr(torch, dtype))

            def run():
                with torch.inference_mode():
                    torch.mm(x, x)

            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        else:
            import tensorflow as tf

            x = tf.cast(tf.constant(a), dtype)
            f = tf.function(lambda u: tf.reduce_sum(tf.cast(tf.linalg.matmul(u, u)[:1, :1], "float32")),
                            jit_compile=self.jit)
            run, sync = (lambda: f(x).numpy()), (lambda: None)
        return matmul_gflops(run, sync, size)

    def build(self, model, cfg, dtype):
        policy = dtype  # "float32" or "mixed_bfloat16"
        if model == "videomae":
            from keras_har.models.videomae_backbone import VideoMAEBackbone
            from keras_har.models.videomae_classifier import VideoMAEClassifier

            backbone = VideoMAEBackbone(
                image_size=cfg["image_size"], patch_size=cfg["patch_size"], num_frames=cfg["num_frames"],
                tubelet_size=cfg["tubelet_size"], hidden_size=cfg["hidden_size"],
                num_layers=cfg["num_layers"], num_heads=cfg["num_heads"],
                intermediate_size=cfg["intermediate_size"], hidden_act="gelu", use_qv_bias=True,
                layer_norm_eps=1e-12, use_mean_pooling=True, dtype=policy,
            )
            net = VideoMAEClassifier(backbone, num_classes=NUM_CLASSES)
        else:
            import keras_hub

            from keras_har.models.mean_pooled_vit_classifier import MeanPooledViTClassifier

            backbone = keras_hub.models.ViTBackbone(
                image_shape=(cfg["image_size"], cfg["image_size"], 3), patch_size=cfg["patch_size"],
                num_layers=cfg["num_layers"], num_heads=cfg["num_heads"], hidden_dim=cfg["hidden_size"],
                mlp_dim=cfg["intermediate_size"], layer_norm_epsilon=1e-6, dtype=policy,
            )
            net = MeanPooledViTClassifier(backbone=backbone, num_classes=NUM_CLASSES)
        self.net = net
        return net.count_params()

    def compile(self, training):
        keras = self.keras
        if training:
            if self.optimizer == "grouped":
                from keras_har.training.optimizers import build_adamw

                opt = build_adamw(self.net, learning_rate=1e-4, weight_decay=0.05, clip_norm=1.0)
            else:
                opt = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.05, global_clipnorm=1.0)
            self.net.compile(optimizer=opt, loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                             jit_compile=self.jit)
        else:
            self.net.compile(jit_compile=self.jit)

    def inference_fn(self, videos):
        net = self.net
        net.make_predict_function()  # the compiled predict path, built once
        return lambda: net.predict_on_batch(videos)

    def train_fn(self, videos, labels):
        net = self.net
        return lambda: net.train_on_batch(videos, labels)

    @staticmethod
    def videos(cfg, batch):
        import numpy as np

        size = cfg["image_size"]
        return np.random.default_rng(batch).standard_normal(
            (batch, cfg["num_frames"], size, size, 3)).astype("float32")


def patch_einsum_attention():
    """Experiment (variant suffix `+einsum_attention`): VideoMAE attention as two
    einsums and a softmax (in the compute dtype) instead of
    `keras.ops.dot_product_attention`. Faster under jax (whose
    `jax.nn.dot_product_attention` vmaps over head groups and scales the
    logits) and tensorflow `graph` in bfloat16 (no float32 round trip of the
    logits); slower under torch (no fused SDPA kernel), so not the model's code."""
    from keras import ops

    from keras_har.models.videomae_backbone import VideoMAEAttention

    def call(self, x, training=None):
        batch, tokens = ops.shape(x)[0], ops.shape(x)[1]
        qkv = self.qkv(x)
        if self.use_qv_bias:
            q_bias = ops.cast(self.q_bias, qkv.dtype)
            v_bias = ops.cast(self.v_bias, qkv.dtype)
            qkv = qkv + ops.concatenate([q_bias, ops.zeros_like(q_bias), v_bias])
        qkv = ops.reshape(qkv, (batch, tokens, 3, self.num_heads, self.head_dim))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        scores = ops.einsum("bqhd,bkhd->bhqk", q * ops.cast(self.head_dim**-0.5, q.dtype), k)
        probs = ops.softmax(scores, axis=-1)
        if self.attention_dropout > 0 and training:
            probs = self.dropout(probs, training=training)
        out = ops.einsum("bhqk,bkhd->bqhd", probs, v)
        out = ops.reshape(out, (batch, tokens, self.hidden_size))
        return self.proj(out)

    VideoMAEAttention.call = call


class TorchReference:
    """transformers' VideoMAE / timm's ViT-S in eager PyTorch."""

    backend = "torch"

    def __init__(self, impl, variant):
        import torch
        import torch._dynamo  # noqa: F401

        self.torch, self.impl, self.variant = torch, impl, variant
        self.dev = "cuda" if torch.cuda.is_available() else "cpu"

    def device(self):
        torch = self.torch
        return "cuda:" + torch.cuda.get_device_name(0) if self.dev == "cuda" else "cpu"

    def device_peak_mb(self):
        return self.torch.cuda.max_memory_allocated() / 2**20 if self.dev == "cuda" else None

    def framework_version(self):
        import importlib

        mod = importlib.import_module(self.impl)
        return f"{self.impl} {mod.__version__}, torch {self.torch.__version__}"

    def sync(self):
        if self.dev == "cuda":
            self.torch.cuda.synchronize()

    def matmul_peak(self, dtype, size):
        torch = self.torch
        x = torch.randn(size, size, device=self.dev).to(getattr(torch, dtype))

        def run():
            with torch.inference_mode():
                torch.mm(x, x)

        return matmul_gflops(run, self.sync, size)

    def build(self, model, cfg, dtype):
        torch = self.torch
        torch.manual_seed(0)
        if model == "videomae":
            from transformers import VideoMAEConfig, VideoMAEForVideoClassification

            config = VideoMAEConfig(
                image_size=cfg["image_size"], patch_size=cfg["patch_size"], num_frames=cfg["num_frames"],
                tubelet_size=cfg["tubelet_size"], hidden_size=cfg["hidden_size"],
                num_hidden_layers=cfg["num_layers"], num_attention_heads=cfg["num_heads"],
                intermediate_size=cfg["intermediate_size"], num_labels=NUM_CLASSES,
            )
            net = VideoMAEForVideoClassification(config)
            self.forward = lambda x: net(pixel_values=x).logits
        else:
            import timm

            frames = cfg["num_frames"]

            class FrameMeanViT(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.vit = timm.models.vision_transformer.VisionTransformer(
                        img_size=cfg["image_size"], patch_size=cfg["patch_size"],
                        embed_dim=cfg["hidden_size"], depth=cfg["num_layers"], num_heads=cfg["num_heads"],
                        mlp_ratio=cfg["intermediate_size"] / cfg["hidden_size"], num_classes=0,
                    )
                    self.head = torch.nn.Linear(cfg["hidden_size"], NUM_CLASSES)

                def forward(self, x):  # (B, T, 3, H, W)
                    b = x.shape[0]
                    feats = self.vit(x.flatten(0, 1)).view(b, frames, -1)
                    return self.head(feats.mean(1))

            net = FrameMeanViT()
            self.forward = net
        net = net.to(self.dev)
        if dtype == "bfloat16":
            net = net.to(torch.bfloat16)
        self.net, self.dtype = net, dtype
        return sum(p.numel() for p in net.parameters())

    def compile(self, training):
        self.net.train(training)

    def _autocast(self):
        import contextlib

        torch = self.torch
        if self.dtype == "mixed_bfloat16":
            return torch.autocast(self.dev, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def videos(self, cfg, batch):
        torch = self.torch
        size = cfg["image_size"]
        g = torch.Generator().manual_seed(batch)
        x = torch.randn(batch, cfg["num_frames"], 3, size, size, generator=g).to(self.dev)
        return x.to(torch.bfloat16) if self.dtype == "bfloat16" else x

    def inference_fn(self, videos):
        torch = self.torch

        def run():
            with torch.inference_mode(), self._autocast():
                return self.forward(videos)

        return run

    def train_fn(self, videos, labels):
        torch = self.torch
        opt = torch.optim.AdamW(self.net.parameters(), lr=1e-4, weight_decay=0.05)
        target = torch.as_tensor(labels, device=self.dev)

        def run():
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                logits = self.forward(videos)
                loss = torch.nn.functional.cross_entropy(logits.float(), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            opt.step()
            return loss.item()

        return run


def matmul_gflops(run, sync, size, repeats=3):
    run()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def job_modes(job):
    """The (mode, batch) pairs a job times, in order."""
    modes = [("inference", b) for b in INFER_BATCHES]
    if job.get("train", True):
        modes.append(("train", TRAIN_BATCH))
    return [(m, b) for m, b in modes if f"{m}{b}" in job.get("modes", f"{m}{b}")]


def run_job(job):
    """One (model, impl, backend, variant, dtype) job: prints result rows."""
    import numpy as np

    model, impl, backend, variant, dtype = (job[k] for k in KEYS)
    cfg = (QUICK_CONFIGS if job["quick"] else FULL_CONFIGS)[model]
    if impl == "keras_har":
        runner = KerasImpl(backend, variant, job.get("optimizer", "adamw"))
    else:
        runner = TorchReference(impl, variant)
    sync = getattr(runner, "sync", lambda: None)
    peak_dtype = "float32" if dtype == "float32" else "bfloat16"
    matmul_peak = runner.matmul_peak(peak_dtype, 512 if job["quick"] else 2048)
    params = runner.build(model, cfg, dtype)
    flops = model_flops(model, cfg)
    base = dict(model=model, impl=impl, backend=backend, variant=variant, dtype=dtype,
                device=runner.device(), framework=runner.framework_version(), params=int(params),
                gflop_per_clip_forward=flops / 1e9, matmul_peak_gflops=matmul_peak,
                optimizer=job.get("optimizer", "adamw") if impl == "keras_har" else "torch.optim.AdamW")
    for mode, batch in job_modes(job):
        row = dict(base, mode=mode, batch_size=batch)
        try:
            runner.compile(training=mode == "train")
            videos = runner.videos(cfg, batch)
            if mode == "train":
                labels = np.eye(NUM_CLASSES, dtype="float32")[np.arange(batch) % NUM_CLASSES]
                fn = runner.train_fn(videos, labels)
            else:
                fn = runner.inference_fn(videos)
            first, steady, n = time_calls(fn, job["repeats"], job["budget_s"], sync)
            call_flops = flops * batch * (3 if mode == "train" else 1)
            row.update(
                clips_per_s=batch / steady, step_time_s=steady, first_call_s=first,
                compile_time_s=max(0.0, first - steady), timed_calls=n,
                achieved_gflops=call_flops / steady / 1e9,
                peak_fraction=call_flops / steady / 1e9 / matmul_peak,
            )
        except Exception as exc:  # noqa: BLE001 - a failed setting is a row, not a crash
            row.update(error=f"{type(exc).__name__}: {str(exc)[:300]}")
        row["peak_rss_mb"] = _max_rss_mb()
        row["device_peak_mb"] = runner.device_peak_mb()
        print(RESULT_TAG + json.dumps(row), flush=True)


def worker_main(jobs):
    for job in jobs:
        try:
            run_job(job)
        except Exception as exc:  # noqa: BLE001
            print(RESULT_TAG + json.dumps(dict(
                {k: job[k] for k in KEYS},
                mode="setup", batch_size=0, error=f"{type(exc).__name__}: {str(exc)[:300]}")), flush=True)


# --------------------------------------------------------------------------- driver


def find_allocator(choice):
    """The malloc library to preload into the workers (None: the system's)."""
    if choice == "system":
        return None
    if choice != "auto":
        if not pathlib.Path(choice).exists():
            raise SystemExit(f"--allocator {choice}: no such file")
        return choice
    return next((p for p in TCMALLOC_PATHS if pathlib.Path(p).exists()), None)


def make_jobs(args):
    jobs = []
    common = dict(quick=args.quick, repeats=args.repeats, budget_s=args.budget, modes=args.modes,
                  optimizer=args.optimizer)
    extra = {}
    for item in filter(None, args.variants.split(",")):
        backend, variant = item.split(":")
        extra.setdefault(backend, []).append(variant)
    for model in args.models:
        for backend in args.backends:
            variants = [DEFAULT_VARIANT[backend]] + [v for v in extra.get(backend, [])
                                                      if v != DEFAULT_VARIANT[backend]]
            for variant in variants:
                for dtype in [d for d in ("float32", "mixed_bfloat16") if d in args.dtypes]:
                    jobs.append(dict(common, model=model, impl="keras_har", backend=backend,
                                     variant=variant, dtype=dtype))
        if args.reference:
            impl = REFERENCE_IMPL[model]
            for dtype in [d for d in ("float32", "mixed_bfloat16", "bfloat16") if d in args.dtypes]:
                jobs.append(dict(common, model=model, impl=impl, backend="torch", variant="eager",
                                 dtype=dtype, train=dtype != "bfloat16"))
    return [job for job in jobs if job_modes(job)]


def split_by_phase(job):
    """A full-run VideoMAE job as an inference job and a train job (separate
    processes: each row's peak RSS is then its own, and the inference buffers
    do not sit under a 15 GB training step). ViT jobs stay whole (small)."""
    if job["model"] != "videomae":
        return [job]
    modes = [f"{m}{b}" for m, b in job_modes(job)]
    parts = [[m for m in modes if m.startswith("inference")], [m for m in modes if m.startswith("train")]]
    return [dict(job, modes=part) for part in parts if part]


def worker_env(backend, allocator):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    if allocator:
        env["LD_PRELOAD"] = " ".join(filter(None, [allocator, os.environ.get("LD_PRELOAD", "")]))
        env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(2**40))  # no "large alloc" lines
    return env


def run_group(jobs, env, timeout, log, on_row):
    """Runs jobs in one worker process; calls on_row(row) as each row arrives."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(jobs)]
    rows = []
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        killed = threading.Event()
        timer = threading.Timer(timeout, lambda: (killed.set(), proc.kill()))
        timer.start()
        try:
            for line in proc.stdout:
                if line.startswith(RESULT_TAG):
                    row = json.loads(line[len(RESULT_TAG):])
                    rows.append(row)
                    on_row(row)
            rc = proc.wait()
        finally:
            timer.cancel()
        if killed.is_set():
            rc = f"{rc} (killed after the {timeout:.0f} s timeout)"
        err.seek(0)
        stderr = err.read()
    if log:
        log.write(stderr)
    done = {tuple(r[k] for k in KEYS) + (r["mode"], r["batch_size"]) for r in rows}
    for job in jobs:
        key = tuple(job[k] for k in KEYS)
        for mode, batch in job_modes(job):
            if key + (mode, batch) not in done:
                row = dict(zip(KEYS, key), mode=mode, batch_size=batch,
                           error=f"worker exit {rc}: {stderr.strip()[-300:]}")
                rows.append(row)
                on_row(row)
    return rows


def add_ratios(rows):
    refs = {(r["model"], r["mode"], r["batch_size"]): r["clips_per_s"] for r in rows
            if r["impl"] == REFERENCE_IMPL.get(r["model"]) and r["dtype"] == "float32" and "clips_per_s" in r}
    for r in rows:
        ref = refs.get((r["model"], r["mode"], r["batch_size"]))
        r["ratio_vs_reference"] = (r["clips_per_s"] / ref) if ref and "clips_per_s" in r else None
    return rows


def kernel_family(r):
    """Rows whose matmuls run on the same kernels: every torch row (keras_har's
    torch backend and the references), jax, tensorflow `xla` and `graph` apart."""
    framework = "torch" if r["impl"] != "keras_har" or r["backend"] == "torch" else r["backend"]
    kernels = r["variant"] if framework == "tensorflow" else ""
    dtype = "float32" if r["dtype"] == "float32" else "bfloat16"
    return framework, kernels, dtype, r.get("device", "")


def pool_matmul_peaks(rows):
    """One matmul peak per kernel family and dtype: the best of the run's
    measurements. A single 2048^2 matmul timed in each worker varies by up to
    2x on a busy 2-core machine, which made fractions above 100%; each
    worker's own reading stays in `matmul_peak_worker_gflops`."""
    best = {}
    for r in rows:
        if r.get("matmul_peak_gflops"):
            r.setdefault("matmul_peak_worker_gflops", r["matmul_peak_gflops"])
            key = kernel_family(r)
            best[key] = max(best.get(key, 0.0), r["matmul_peak_worker_gflops"])
    for r in rows:
        if r.get("matmul_peak_gflops"):
            r["matmul_peak_gflops"] = best[kernel_family(r)]
            if "achieved_gflops" in r:
                r["peak_fraction"] = r["achieved_gflops"] / r["matmul_peak_gflops"]
    return rows


def _setting(r):
    return f"{r['backend']}/{r['variant']} {r['dtype']}" if r["impl"] == "keras_har" else f"{r['impl']} {r['dtype']}"


def check_targets(rows, model="videomae"):
    """The issue's targets, from the rows of this run (a target whose rows are
    missing is reported as not measured)."""
    ok = [r for r in rows if r["model"] == model and "clips_per_s" in r]
    ref_impl = REFERENCE_IMPL[model]

    def pick(**kw):
        return [r for r in ok if all(r.get(k) == v for k, v in kw.items())]

    def best(rs):
        return max(rs, key=lambda r: r["clips_per_s"]) if rs else None

    targets = []

    def add(name, threshold, ours, theirs):
        value = ours["clips_per_s"] / theirs["clips_per_s"] if ours and theirs else None
        targets.append(dict(
            target=name, threshold=threshold, value=value,
            met=None if value is None else value >= threshold,
            ours=_setting(ours) if ours else None, reference=_setting(theirs) if theirs else None,
            ours_clips_per_s=ours and ours["clips_per_s"], reference_clips_per_s=theirs and theirs["clips_per_s"]))

    for b in INFER_BATCHES:
        ours = best(pick(impl="keras_har", mode="inference", batch_size=b))
        add(f"inference b{b}: fastest keras_har >= 2.0x {ref_impl} float32", 2.0, ours,
            best(pick(impl=ref_impl, mode="inference", batch_size=b, dtype="float32")))
        add(f"inference b{b}: fastest keras_har >= 1.0x the best {ref_impl} setting", 1.0, ours,
            best(pick(impl=ref_impl, mode="inference", batch_size=b)))
    add(f"train b{TRAIN_BATCH}: jax float32 >= 1.3x {ref_impl} float32", 1.3,
        best(pick(impl="keras_har", backend="jax", dtype="float32", mode="train")),
        best(pick(impl=ref_impl, dtype="float32", mode="train")))
    # Same precision: float32 against float32, mixed_bfloat16 against autocast.
    for dtype in ("float32", "mixed_bfloat16"):
        for mode, b in [("inference", x) for x in INFER_BATCHES] + [("train", TRAIN_BATCH)]:
            add(f"torch backend {mode} b{b} {dtype}: within 1.15x of {ref_impl} (>= 1/1.15)", 1 / 1.15,
                best(pick(impl="keras_har", backend="torch", variant="eager", dtype=dtype, mode=mode,
                          batch_size=b)),
                best(pick(impl=ref_impl, dtype=dtype, mode=mode, batch_size=b)))
    return targets


def targets_markdown(targets):
    lines = ["| target | measured | met | keras_har setting | reference setting |", "|---|---|---|---|---|"]
    for t in targets:
        value = "not measured" if t["value"] is None else f"{t['value']:.2f}x"
        met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {value} | {met} | {t['ours'] or '-'} | {t['reference'] or '-'} |")
    return "\n".join(lines)


def markdown_table(rows):
    head = ("| model | impl | backend | variant | dtype | mode | batch | clips/s | vs ref | step s "
            "| GFLOP/s | % of matmul peak | matmul peak GFLOP/s | compile s | peak RSS MB |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        if "clips_per_s" not in r:
            lines.append(f"| {r['model']} | {r['impl']} | {r['backend']} | {r['variant']} | {r['dtype']} "
                         f"| {r['mode']} | {r['batch_size']} | failed: {r.get('error', '')[:80]} "
                         "| | | | | | | |")
            continue
        ratio = f"{r['ratio_vs_reference']:.2f}x" if r.get("ratio_vs_reference") else "-"
        rss = f"{r['peak_rss_mb']:.0f}"
        if r.get("device_peak_mb"):
            rss += f" (device {r['device_peak_mb']:.0f})"
        lines.append(
            f"| {r['model']} | {r['impl']} | {r['backend']} | {r['variant']} | {r['dtype']} | {r['mode']} "
            f"| {r['batch_size']} | {r['clips_per_s']:.3g} | {ratio} | {r['step_time_s']:.3g} "
            f"| {r['achieved_gflops']:.0f} | {100 * r['peak_fraction']:.0f}% | {r['matmul_peak_gflops']:.0f} "
            f"| {r['compile_time_s']:.1f} | {rss} |")
    return "\n".join(lines)


def progress_line(row, done, total, start):
    head = (f"[{done}/{total} {time.perf_counter() - start:5.0f} s] {row['model']} {row['impl']} "
            f"{row['backend']}/{row['variant']} {row['dtype']} {row['mode']} b{row['batch_size']}: ")
    if "clips_per_s" not in row:
        return head + "failed: " + row.get("error", "")[:200]
    return head + (f"{row['clips_per_s']:.3g} clips/s, {row['step_time_s']:.3g} s/step, "
                   f"compile {row['compile_time_s']:.1f} s, RSS {row['peak_rss_mb'] / 1024:.1f} GB, "
                   f"load {os.getloadavg()[0]:.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny configs (a smoke test)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    parser.add_argument("--models", default="videomae,vit")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per setting (median)")
    parser.add_argument("--budget", type=float, default=None,
                        help="stop timing a setting after this many seconds (>= 1 timed call)")
    parser.add_argument("--variants", default="",
                        help="extra jit variants, e.g. torch:compile,tensorflow:graph,jax:xla+einsum_attention")
    parser.add_argument("--modes", default="inference1,inference4,train2",
                        help="which of inference1,inference4,train2 to time")
    parser.add_argument("--dtypes", default="float32,mixed_bfloat16,bfloat16",
                        help="keras_har runs float32 / mixed_bfloat16; the references also bfloat16")
    parser.add_argument("--optimizer", default="adamw", choices=("adamw", "grouped"),
                        help="keras_har training step: keras AdamW or the recipes' GroupedAdamW")
    parser.add_argument("--allocator", default="auto",
                        help="malloc preloaded into every worker: auto (tcmalloc if installed), system, or a path")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per worker process")
    parser.add_argument("--log", help="append the workers' stderr here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--report", metavar="JSON",
                        help="print the table and targets of a saved --json again (nothing is measured)")
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(json.loads(args.worker))
    if args.report:
        try:
            saved = json.loads(pathlib.Path(args.report).read_text())
            machine, rows = saved["machine"], saved["results"]
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"--report {args.report}: not a backend_speed --json file ({exc})")
        targets = [] if machine.get("quick") or not any(r["model"] == "videomae" for r in rows) else None
        print_report(machine, rows, args.json, targets=targets)
        return 0

    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for b in args.backends:
        if b not in DEFAULT_VARIANT:
            parser.error(f"unknown backend {b!r}")
    for m in args.models:
        if m not in FULL_CONFIGS:
            parser.error(f"unknown model {m!r}")
    if args.repeats is None:
        args.repeats = 5 if args.quick else 3
    if args.budget is None:
        args.budget = 2.0 if args.quick else 30.0
    if args.timeout is None:
        args.timeout = 300.0 if args.quick else 1800.0
    allocator = find_allocator(args.allocator)

    jobs = make_jobs(args)
    # --quick: one process per (impl, backend, variant) to save start-up time
    # (RSS then cumulative). Full runs: one per job and phase.
    groups = {}
    for job in jobs:
        if args.quick:
            groups.setdefault((job["impl"], job["backend"], job["variant"]), []).append(job)
        else:
            for part in split_by_phase(job):
                groups[len(groups)] = [part]
    total = sum(len(job_modes(j)) for j in jobs)
    machine = dict(cpu=cpu_name(), cpu_count=os.cpu_count(), cpu_flags=cpu_flags(), memory_gb=memory_gb(),
                   platform=platform.platform(), python=platform.python_version(),
                   allocator=allocator or "system", xla_flags=os.environ.get("XLA_FLAGS", ""),
                   load_average_before=load_average(), quick=args.quick)
    print(f"# {len(jobs)} settings, {total} rows, {len(groups)} worker processes; CPU {machine['cpu']} "
          f"({machine['cpu_count']} cores), allocator {machine['allocator']}, load {machine['load_average_before']}",
          file=sys.stderr, flush=True)
    log = open(args.log, "a") if args.log else None
    rows = []
    start = time.perf_counter()

    count = [0]

    def on_row(row):
        count[0] += 1
        print(progress_line(row, count[0], total, start), file=sys.stderr, flush=True)

    for group in groups.values():
        g = group[0]
        env = worker_env(g["backend"] if g["impl"] == "keras_har" else "torch", allocator)
        rows.extend(run_group(group, env, args.timeout, log, on_row))
    machine.update(load_average_after=load_average(), wall_time_s=time.perf_counter() - start)
    print_report(machine, rows, args.json, targets=[] if "videomae" not in args.models or args.quick else None)
    if log:
        log.close()
    return 0 if all("clips_per_s" in r for r in rows) else 1


def print_report(machine, rows, json_path=None, targets=None):
    """The table and the targets (computed from the rows unless given); with
    json_path, also the JSON."""
    rows = pool_matmul_peaks(add_ratios(rows))
    if targets is None:
        targets = check_targets(rows)
    print(f"CPU: {machine['cpu']} ({machine['cpu_count']} cores, {machine['memory_gb']} GB); "
          f"allocator {machine['allocator']}; load average before {machine['load_average_before']}, "
          f"after {machine['load_average_after']}; wall {machine['wall_time_s']:.0f} s")
    print(markdown_table(rows))
    if targets:
        print("\nTargets (VideoMAE-B, this run):\n")
        print(targets_markdown(targets))
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps({"machine": machine, "results": rows, "targets": targets},
                                                      indent=1))


if __name__ == "__main__":
    sys.exit(main())

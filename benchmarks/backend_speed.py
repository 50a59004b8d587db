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

Columns: clips/s, the ratio to the reference (transformers / timm float32 eager,
same mode and batch), achieved GFLOP/s (analytic model FLOPs: patch embedding
+ per layer 8*N*d^2 (qkv + proj) + 4*N^2*d (attention) + 4*N*d*m (MLP); x3 for
a training step) and its fraction of the same framework's measured matmul peak
for that dtype (a 2048^2 matmul in the same subprocess), peak RSS of the
subprocess, and first-call compile time (first call minus steady state).

Keras inference runs `model.predict_on_batch` after `model.compile(jit_compile=...)`
(the compiled predict function; one host transfer of the logits per call);
training times `model.train_on_batch`. `jit_compile` per backend ("variant"):
jax `xla` (always jitted), tensorflow `xla` (default) or `graph` (tf.function
without XLA), torch `eager` (default) or `compile` (torch.compile).

`--json` writes {"machine": {...}, "results": [{"model", "impl", "backend",
"dtype", "mode", "batch_size", "clips_per_s", "ratio_vs_reference", ...}]}.
`--quick` uses tiny configs and finishes in well under 2 minutes. Runs on a GPU
unchanged when the framework finds one (each row reports its device).
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

NUM_CLASSES = 51
RESULT_TAG = "@@BACKEND_SPEED@@ "
INFER_BATCHES = (1, 4)
TRAIN_BATCH = 2

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
# `<variant>+einsum_attention` (the proposed VideoMAE attention change, patched in).


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

    def __init__(self, backend, variant):
        self.backend, self.variant = backend, variant
        if backend == "torch" or variant.startswith("compile"):
            import torch._dynamo  # noqa: F401  (before TensorFlow: see the module doc of tests/conftest.py)
        import keras

        self.keras = keras
        if "einsum_attention" in variant:
            patch_einsum_attention()

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

    def framework_version(self):
        import importlib

        mod = importlib.import_module({"tensorflow": "tensorflow"}.get(self.backend, self.backend))
        return f"keras {self.keras.__version__}, {self.backend} {mod.__version__}"

    def matmul_peak(self, dtype, size):
        """Best GFLOP/s of a size^2 matmul in this framework and dtype."""
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
            f = tf.function(lambda u: tf.reduce_sum(tf.cast(tf.linalg.matmul(u, u)[:1, :1], "float32")))
            run, sync = (lambda: f(x).numpy()), (lambda: None)
        return matmul_gflops(run, sync, size)

    def build(self, model, cfg, dtype):
        keras = self.keras
        policy = "mixed_bfloat16" if dtype == "mixed_bfloat16" else "float32"
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
        jit = self.variant.split("+")[0] in ("xla", "compile")
        if training:
            opt = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.05, global_clipnorm=1.0)
            self.net.compile(optimizer=opt, loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                             jit_compile=jit)
        else:
            self.net.compile(jit_compile=jit)

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
    einsums and a softmax instead of `keras.ops.dot_product_attention` -- the
    change proposed for `VideoMAEAttention.call` on the jax / tensorflow backends."""
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
            self.channels_first = True
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
            self.channels_first = True
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


def run_job(job):
    """One (model, impl, backend, variant, dtype) job: yields result rows."""
    import numpy as np

    model, impl, backend, variant, dtype = (job[k] for k in ("model", "impl", "backend", "variant", "dtype"))
    cfg = (QUICK_CONFIGS if job["quick"] else FULL_CONFIGS)[model]
    if impl == "keras_har":
        runner = KerasImpl(backend, variant)
    else:
        runner = TorchReference(impl, variant)
    sync = getattr(runner, "sync", lambda: None)
    peak_dtype = "float32" if dtype == "float32" else "bfloat16"
    matmul_peak = runner.matmul_peak(peak_dtype, 512 if job["quick"] else 2048)
    params = runner.build(model, cfg, dtype)
    flops = model_flops(model, cfg)
    base = dict(model=model, impl=impl, backend=backend, variant=variant, dtype=dtype,
                device=runner.device(), framework=runner.framework_version(), params=int(params),
                gflop_per_clip_forward=flops / 1e9, matmul_peak_gflops=matmul_peak)
    modes = [("inference", b) for b in INFER_BATCHES]
    if job.get("train", True):
        modes.append(("train", TRAIN_BATCH))
    modes = [(m, b) for m, b in modes if f"{m}{b}" in job.get("modes", f"{m}{b}")]
    for mode, batch in modes:
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
        print(RESULT_TAG + json.dumps(row), flush=True)


def worker_main(jobs):
    for job in jobs:
        try:
            run_job(job)
        except Exception as exc:  # noqa: BLE001
            print(RESULT_TAG + json.dumps(dict(
                {k: job[k] for k in ("model", "impl", "backend", "variant", "dtype")},
                mode="setup", batch_size=0, error=f"{type(exc).__name__}: {str(exc)[:300]}")), flush=True)


# --------------------------------------------------------------------------- driver


def cpu_name():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
    except OSError:
        pass
    return []


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def make_jobs(args):
    jobs = []
    common = dict(quick=args.quick, repeats=args.repeats, budget_s=args.budget, modes=args.modes)
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
    return jobs


def run_group(jobs, env_backend, timeout, log):
    env = {**os.environ, "KERAS_BACKEND": env_backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, __file__, "--worker", json.dumps(jobs)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, rc = f"timeout after {timeout} s", "timeout"
    rows = [json.loads(line[len(RESULT_TAG):]) for line in out.splitlines() if line.startswith(RESULT_TAG)]
    done = {(r["model"], r["impl"], r["backend"], r["variant"], r["dtype"]) for r in rows}
    for job in jobs:
        key = tuple(job[k] for k in ("model", "impl", "backend", "variant", "dtype"))
        if key not in done:
            rows.append(dict(zip(("model", "impl", "backend", "variant", "dtype"), key), mode="setup",
                             batch_size=0, error=f"worker exit {rc}: {err.strip()[-300:]}"))
    if log:
        log.write(err)
    return rows


def add_ratios(rows):
    refs = {(r["model"], r["mode"], r["batch_size"]): r["clips_per_s"] for r in rows
            if r["impl"] == REFERENCE_IMPL.get(r["model"]) and r["dtype"] == "float32" and "clips_per_s" in r}
    for r in rows:
        ref = refs.get((r["model"], r["mode"], r["batch_size"]))
        r["ratio_vs_reference"] = (r["clips_per_s"] / ref) if ref and "clips_per_s" in r else None
    return rows


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
        lines.append(
            f"| {r['model']} | {r['impl']} | {r['backend']} | {r['variant']} | {r['dtype']} | {r['mode']} "
            f"| {r['batch_size']} | {r['clips_per_s']:.3g} | {ratio} | {r['step_time_s']:.3g} "
            f"| {r['achieved_gflops']:.0f} | {100 * r['peak_fraction']:.0f}% | {r['matmul_peak_gflops']:.0f} "
            f"| {r['compile_time_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


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
                        help="extra jit variants, e.g. torch:compile,tensorflow:graph")
    parser.add_argument("--modes", default="inference1,inference4,train2",
                        help="which of inference1,inference4,train2 to time")
    parser.add_argument("--dtypes", default="float32,mixed_bfloat16,bfloat16",
                        help="keras_har runs float32 / mixed_bfloat16; the references also bfloat16")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per worker process")
    parser.add_argument("--log", help="append the workers' stderr here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(json.loads(args.worker))

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
        args.budget = 2.0 if args.quick else 60.0
    if args.timeout is None:
        args.timeout = 300.0 if args.quick else 1800.0

    jobs = make_jobs(args)
    # Full runs: one process per job, so peak RSS is that job's. --quick: one
    # process per (impl, backend) to save start-up time (RSS then cumulative).
    groups = {}
    for job in jobs:
        key = (job["impl"], job["backend"], job["variant"]) if args.quick else len(groups)
        groups.setdefault(key, []).append(job)
    machine = dict(cpu=cpu_name(), cpu_count=os.cpu_count(), cpu_flags=cpu_flags(),
                   platform=platform.platform(), python=platform.python_version(),
                   load_average_before=load_average(), quick=args.quick)
    log = open(args.log, "a") if args.log else None
    rows = []
    start = time.perf_counter()
    for group in groups.values():
        env_backend = group[0]["backend"] if group[0]["impl"] == "keras_har" else "torch"
        t0 = time.perf_counter()
        rows.extend(run_group(group, env_backend, args.timeout, log))
        g = group[0]
        print(f"# {g['impl']}/{g['backend']}/{g['variant']} {[j['model'] + ':' + j['dtype'] for j in group]} "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    machine.update(load_average_after=load_average(), wall_time_s=time.perf_counter() - start)
    rows = add_ratios(rows)
    print(f"CPU: {machine['cpu']} ({machine['cpu_count']} cores); load average before "
          f"{machine['load_average_before']}, after {machine['load_average_after']}; "
          f"wall {machine['wall_time_s']:.0f} s")
    print(markdown_table(rows))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"machine": machine, "results": rows}, indent=1))
    if log:
        log.close()
    return 0 if all("clips_per_s" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

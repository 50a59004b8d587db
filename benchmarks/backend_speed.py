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
(batch 2, AdamW with global clip norm 1.0, cross-entropy). With `--modes
...,pretrain2`, also a VideoMAE pre-training step at batch 2 (`pretrain`:
keras-har's `VideoMAEPretrainer` on the same encoder, decoder width 384 depth 4,
90% tube mask, its masked-pixel loss, the same optimizer, against transformers'
`VideoMAEForPreTraining` on the same mask, float32 and bfloat16 autocast), and
its speed-up over the fine-tuning step (`train`) of the same setting;

- `exported` (when tensorflow is in --backends): the same VideoMAE exported by
  keras-har and run, inference only, by ONNX Runtime (float32, int8), OpenVINO
  (float32, bfloat16), TensorFlow SavedModel and LiteRT (float32, int8), each
  bf16 / int8 row with its accuracy cost against float32 on --accuracy-clips
  random clips (speed/exported_runtimes.py).

    python benchmarks/backend_speed.py [--quick] [--json PATH]
        [--backends jax,torch,tensorflow] [--models videomae,vit] [--repeats N]
        [--variants torch:compile,tensorflow:graph] [--no-reference]
        [--allocator auto|system|PATH] [--optimizer adamw|grouped]
        [--exported all|none|onnxruntime,openvino,tf_saved_model,litert] [--export-dir DIR]
        [--accuracy-clips N]

Columns: clips/s, the ratio to the reference (transformers / timm float32 eager,
same mode and batch), achieved GFLOP/s (analytic model FLOPs: patch embedding
+ per layer 8*N*d^2 (qkv + proj) + 4*N^2*d (attention) + 4*N*d*m (MLP); x3 for
a training step; for `pretrain` the encoder on the visible tokens, the decoder on
all of them, the head on the masked ones, x3) and its fraction of the same framework's measured matmul peak
for that dtype (a 2048^2 matmul timed in every worker, compiled the way the
row is: XLA for jax and tensorflow `xla`; the best reading of the run per
framework, kernels and dtype, as one reading varies up to 2x), peak RSS of the subprocess (and the
device's peak memory on a GPU), and first-call compile time (first call minus
steady state). After the table, the speed targets for VideoMAE-B are checked
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
"targets": [...], "pretrain_speedups": [...]}; `--report PATH` prints a saved one's table again;
`--docs DIR` also writes the documentation page (docs_pages.py). `--quick`
uses tiny configs and finishes in well under 2 minutes. Runs on a GPU
unchanged when the framework finds one (each row reports its device; the
CPU-only settings -- allocator, XLA:CPU flags -- do not matter there).

This file is the command line; the work is in `speed/` (its `__init__` lists
the modules). A new kind of row (another runtime, another mode) is one class or
function plus a line in `speed/registry.py`, whose docstring says how.
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import docs_pages  # beside this script
from machine_info import cpu_flags, cpu_name, describe, load_average, memory_gb
from speed.configs import DEFAULT_VARIANT, FULL_CONFIGS
from speed.jobs import job_modes, make_jobs, worker_groups, worker_main
from speed.registry import RUNNERS, runner_class
from speed.report import markdown, print_report, progress_line  # noqa: F401  (markdown: docs_pages renders with it)
from speed.workers import find_allocator, run_group, worker_env


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
                        help="which of inference1,inference4,train2,pretrain2 to time (pretrain2: VideoMAE "
                             "pre-training, compared with train2 of the same setting when both are timed)")
    parser.add_argument("--dtypes", default="float32,mixed_bfloat16,bfloat16,int8",
                        help="keras_har runs float32 / mixed_bfloat16; the references also bfloat16; "
                             "the exported runtimes float32, bfloat16 (OpenVINO), int8 (ONNX Runtime, LiteRT)")
    parser.add_argument("--exported", default="all",
                        help="exported runtimes timed beside the backends when tensorflow (which exports) is "
                             "in --backends: all (those installed), none, or a list of "
                             "onnxruntime,openvino,tf_saved_model,litert")
    parser.add_argument("--export-dir", metavar="DIR",
                        help="keep the exported VideoMAE files here and reuse those already there "
                             "(exporting VideoMAE-B to ONNX takes minutes); default: a temporary directory")
    parser.add_argument("--accuracy-clips", type=int, default=None,
                        help="random clips for the accuracy cost of the bf16 / int8 exports (default 64; 8 with --quick)")
    parser.add_argument("--optimizer", default="adamw", choices=("adamw", "grouped"),
                        help="keras_har training step: keras AdamW or the recipes' GroupedAdamW")
    parser.add_argument("--allocator", default="auto",
                        help="malloc preloaded into every worker: auto (tcmalloc if installed), system, or a path")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per worker process")
    parser.add_argument("--log", help="append the workers' stderr here")
    docs_pages.add_docs_args(parser)
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
    if args.accuracy_clips is None:
        args.accuracy_clips = 8 if args.quick else 64
    if args.timeout is None:
        args.timeout = 300.0 if args.quick else 1800.0
    try:
        allocator = find_allocator(args.allocator)
    except FileNotFoundError as exc:
        parser.error(str(exc))

    machine_description = describe()
    jobs = make_jobs(args)
    groups = worker_groups(jobs, args.quick)
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

    try:
        for group in groups:  # a job's `backend` is its worker's KERAS_BACKEND (torch for the references)
            preload = allocator if runner_class(group[0]["impl"]).preload_allocator(group[0]) else None
            rows.extend(run_group(group, worker_env(group[0]["backend"], preload), args.timeout, log, on_row))
    finally:
        for cls in RUNNERS:
            cls.cleanup(args)
    machine.update(load_average_after=load_average(), wall_time_s=time.perf_counter() - start)
    result = print_report(machine, rows, args.json,
                          targets=[] if "videomae" not in args.models or args.quick else None)
    if args.docs:
        docs_pages.write(args.docs, "backend_speed", result, sys.argv[1:] if argv is None else argv,
                         args.docs_note, machine_description)
    if log:
        log.close()
    return 0 if all("clips_per_s" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

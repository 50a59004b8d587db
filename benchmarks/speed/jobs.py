"""Which jobs a run has, and how a worker process times them.

A job is a dict: the row keys (KEYS: model, impl, backend, variant, dtype), the
run's settings (quick, repeats, budget_s, modes, optimizer) and, for a job that
times no training step, `train: False`. A worker prints each result row as one
RESULT_TAG line on stdout."""

import json

from speed.configs import FULL_CONFIGS, QUICK_CONFIGS, model_flops
from speed.registry import MODES, RUNNERS, mode, runner_class
from speed.timing import max_rss_mb, time_calls

RESULT_TAG = "@@BACKEND_SPEED@@ "
KEYS = ("model", "impl", "backend", "variant", "dtype")


def make_jobs(args):
    """Every runner's jobs for every model of the parsed command line."""
    common = dict(quick=args.quick, repeats=args.repeats, budget_s=args.budget, modes=args.modes,
                  optimizer=args.optimizer)
    jobs = [job for model in args.models for cls in RUNNERS for job in cls.make_jobs(model, args, common)]
    return [job for job in jobs if job_modes(job)]


def job_modes(job):
    """The (mode, batch) pairs a job times, in order."""
    return [(m.name, b) for m in MODES if (job.get("train", True) or not m.training) and m.applies_to(job["model"])
            for b in m.batches if f"{m.name}{b}" in job.get("modes", f"{m.name}{b}")]


def split_by_mode(job):
    """A full-run VideoMAE job as one job per mode (separate processes: each
    row's peak RSS is then its own, and the inference buffers do not sit under
    a 15 GB training step). ViT jobs stay whole (small)."""
    if job["model"] != "videomae":
        return [job]
    pairs = job_modes(job)
    parts = [[f"{name}{b}" for name, b in pairs if name == m.name] for m in MODES]
    return [dict(job, modes=part) for part in parts if part]


def worker_groups(jobs, quick):
    """The jobs each worker process runs: with `quick` one process per (impl,
    backend, variant) to save start-up time (RSS then cumulative); else one per
    job and mode (split_by_mode)."""
    groups = {}
    for job in jobs:
        if quick:
            groups.setdefault((job["impl"], job["backend"], job["variant"]), []).append(job)
        else:
            for part in split_by_mode(job):
                groups[len(groups)] = [part]
    return list(groups.values())


def run_job(job):
    """One (model, impl, backend, variant, dtype) job: prints result rows."""
    model, impl, backend, variant, dtype = (job[k] for k in KEYS)
    cfg = (QUICK_CONFIGS if job["quick"] else FULL_CONFIGS)[model]
    runner = runner_class(impl).from_job(job)
    peak_dtype = "float32" if dtype == "float32" else "bfloat16"
    matmul_peak = runner.matmul_peak(peak_dtype, 512 if job["quick"] else 2048)
    params = runner.build(model, cfg, dtype)
    flops = model_flops(model, cfg)
    base = dict(model=model, impl=impl, backend=backend, variant=variant, dtype=dtype,
                device=runner.device(), framework=runner.framework_version(), params=int(params),
                gflop_per_clip_forward=flops / 1e9, matmul_peak_gflops=matmul_peak,
                optimizer=runner.optimizer_name)
    try:
        base.update(runner.extra_fields(cfg))
    except Exception as exc:  # noqa: BLE001 - reported in the rows, the timing still runs
        base["extra_fields_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    for name, batch in job_modes(job):
        row = dict(base, mode=name, batch_size=batch)
        timed = mode(name)
        try:
            runner.compile(training=timed.training)
            fn = timed.step(runner, cfg, batch)
            first, steady, n = time_calls(fn, job["repeats"], job["budget_s"], runner.sync)
            call_flops = timed.clip_flops(model, cfg) * batch
            row.update(
                gflop_per_clip_step=call_flops / batch / 1e9,
                clips_per_s=batch / steady, step_time_s=steady, first_call_s=first,
                compile_time_s=max(0.0, first - steady), timed_calls=n,
                achieved_gflops=call_flops / steady / 1e9,
                peak_fraction=call_flops / steady / 1e9 / matmul_peak if matmul_peak else None,
            )
        except Exception as exc:  # noqa: BLE001 - a failed setting is a row, not a crash
            row.update(error=f"{type(exc).__name__}: {str(exc)[:300]}")
        row["peak_rss_mb"] = max_rss_mb()
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

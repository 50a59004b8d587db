"""Repeat a recipe over seeds; write the mean, standard deviation and per-seed values.

    python benchmarks/seed_runs.py --seeds 0 1 2 --output-dir runs/seeds -- \\
        recipes/videomae_two_phase.py --synthetic hard

Each seed runs `python <recipe> <flags> --seed S --output-dir <output-dir>/seed_S`
(a seed whose run directory already has metrics.json is not run again), then
`<output-dir>/summary.json` holds, for each protocol ("single_view", "tta",
"official") and metric ("top1", "top5", "mean_class_accuracy"), `mean`, `std`
(sample standard deviation, ddof=1; 0 for one seed) and `values` (per seed, in
`seeds` order), with each seed's `top1_ci95` and the run's `selection`.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

PROTOCOLS = ("single_view", "tta", "official")
METRICS = ("top1", "top5", "mean_class_accuracy")


def summarize(metrics_per_seed, seeds):
    """The summary of a list of metrics.json dicts (one per seed)."""
    if len(metrics_per_seed) != len(seeds) or not seeds:
        raise ValueError(f"{len(metrics_per_seed)} metrics for {len(seeds)} seeds.")
    out = {"seeds": list(seeds),
           "selection": sorted({m.get("selection", "test") for m in metrics_per_seed}),
           "num_videos": metrics_per_seed[0].get("num_videos"),
           "num_val_videos": metrics_per_seed[0].get("num_val_videos")}
    for protocol in PROTOCOLS:
        if not all(protocol in m for m in metrics_per_seed):
            continue
        entry = {}
        for metric in METRICS:
            values = np.array([m[protocol][metric] for m in metrics_per_seed], dtype="float64")
            entry[metric] = {"mean": float(values.mean()),
                             "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                             "values": values.tolist()}
        entry["top1_ci95"] = [m[protocol].get("top1_ci95") for m in metrics_per_seed]
        out[protocol] = entry
    return out


def run_seed(recipe, flags, seed, run_dir, log=None):
    """One recipe run as a subprocess (skipped when run_dir has metrics.json);
    returns its metrics.json and the seconds it took (0 when reused)."""
    run_dir = pathlib.Path(run_dir)
    metrics_file = run_dir / "metrics.json"
    if metrics_file.exists():
        return json.loads(metrics_file.read_text()), 0.0
    start = time.time()
    command = [sys.executable, str(recipe), *flags, "--seed", str(seed), "--output-dir", str(run_dir)]
    with open(log or os.devnull, "a") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not metrics_file.exists():
        raise RuntimeError(f"{' '.join(command)} failed (exit {result.returncode}); see {log}.")
    return json.loads(metrics_file.read_text()), time.time() - start


def run_seeds(recipe, flags, seeds, output_dir):
    """Run every seed, write and return `output_dir/summary.json`."""
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs, seconds = [], []
    for seed in seeds:
        metrics, took = run_seed(recipe, flags, seed, output_dir / f"seed_{seed}", output_dir / "runs.log")
        runs.append(metrics)
        seconds.append(took)
        print(f"seed {seed}: single view top-1 {metrics['single_view']['top1']:.4f} "
              f"({took:.0f} s)", flush=True)
    summary = summarize(runs, seeds)
    summary.update(recipe=str(recipe), flags=list(flags), seconds=seconds)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("usage: seed_runs.py [--seeds 0 1 2] --output-dir DIR -- RECIPE [FLAGS...]")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args(argv[:split])
    recipe, *flags = argv[split + 1:] or [None]
    if recipe is None or not pathlib.Path(recipe).is_file():
        raise SystemExit(f"seed_runs.py: no recipe script {recipe!r} after --")
    if any(f in ("--seed", "--output-dir") for f in flags):
        raise SystemExit("seed_runs.py: --seed and --output-dir are set per seed; leave them out.")
    summary = run_seeds(recipe, flags, args.seeds, args.output_dir)
    for protocol in PROTOCOLS:
        if protocol in summary:
            top1 = summary[protocol]["top1"]
            print(f"{protocol}: top-1 {top1['mean']:.4f} +- {top1['std']:.4f} "
                  f"({', '.join(f'{v:.3f}' for v in top1['values'])})")
    print(f"summary: {pathlib.Path(args.output_dir) / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main()

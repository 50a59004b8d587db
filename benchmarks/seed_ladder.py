"""The reference protocol's improvement path, one step at a time, on the hard synthetic profile, 3 random seeds per step.

    KERAS_BACKEND=jax python benchmarks/seed_ladder.py
    KERAS_BACKEND=jax python benchmarks/seed_ladder.py --quick    # fewer videos and epochs
    KERAS_BACKEND=jax python benchmarks/seed_ladder.py --quick --docs docs/benchmarks   # also the page

One change per step, each on top of the previous (the path of docs/recipe.md):

  1. the reference baseline: tiny mean-pooled ViT, crops and flips drawn per frame,
     a few epochs, constant lr
  2. clip-consistent crops           (--consistent-crops)
  3. more epochs                     (--epochs)
  4. cosine schedule with warmup     (--lr-schedule cosine)
  5. Mixup 0.8                       (--mixup-alpha 0.8)
  6. VideoMAE from scratch           (the two-phase recipe's phase 1 only: tiny VideoMAE)
  7. VideoMAE pre-trained            (recipes/videomae_pretrain.py on the unlabelled
                                      synthetic training videos, then --preset <run>/model)
  8. two-phase                       (phase 2 from the best phase-1 checkpoint)
  9. 6-view TTA                      (the same runs as step 8, their "tta" result)

Every run selects on its held-out validation set (the recipes' default) and
is tested once on the test split. Runs go in `<output-dir>/<step>/seed_<k>`
(finished runs are reused when the command is run again); the results in
`<output-dir>/ladder.json`, `ladder.md` (the table) and `ladder.png`; with
`--docs DIR`, also the documentation page (docs_pages.py) and `DIR/ladder.png`.
The recipes run in this process, one after another (no start-up per run).
"""

import argparse
import json
import logging
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import docs_pages  # noqa: E402
import machine_info  # noqa: E402

# Dataset size and epochs: the full ladder and --quick.
BUDGETS = {
    "full": dict(train_per_class=60, test_per_class=30, base_epochs=4, more_epochs=16,
                 videomae_epochs=16, phase2_epochs=4, pretrain_epochs=16),
    "quick": dict(train_per_class=20, test_per_class=10, base_epochs=2, more_epochs=6,
                  videomae_epochs=6, phase2_epochs=2, pretrain_epochs=3),
    # A check that every step runs (not a measurement).
    "smoke": dict(train_per_class=4, test_per_class=2, base_epochs=1, more_epochs=2,
                  videomae_epochs=1, phase2_epochs=1, pretrain_epochs=1),
}


def ladder_steps(quick, data_root, pretrained):
    """The steps: name, recipe, flags (`pretrained` has a `{seed}` field: the
    pre-training run's model/ directory), which result to read. `quick` is
    True/False or a budget name."""
    b = BUDGETS[quick if isinstance(quick, str) else ("quick" if quick else "full")]
    data = ["--synthetic", "hard", "--data-root", str(data_root)]
    base = ["baseline_vit_small", data + ["--preset", "tiny", "--epochs", str(b["base_epochs"])]]
    steps = [dict(name="per-frame crops (reference baseline)", recipe=base[0], flags=base[1])]

    def add(name, extra, recipe=None, flags=None):
        prev = steps[-1]
        steps.append(dict(name=name, recipe=recipe or prev["recipe"],
                          flags=(flags if flags is not None else prev["flags"]) + extra))

    add("clip-consistent crops", ["--consistent-crops"])
    add("more epochs", [])
    steps[-1]["flags"] = replace(steps[-1]["flags"], "--epochs", str(b["more_epochs"]))
    add("cosine schedule", ["--lr-schedule", "cosine"])
    add("Mixup 0.8", ["--mixup-alpha", "0.8"])
    videomae = data + ["--preset", "tiny", "--epochs-phase1", str(b["videomae_epochs"]),
                       "--epochs-phase2", "0", "--mixup-alpha", "0.8"]
    add("VideoMAE from scratch", [], recipe="videomae_two_phase", flags=videomae)
    add("VideoMAE pre-trained", [])
    steps[-1]["flags"] = replace(steps[-1]["flags"], "--preset", pretrained)
    add("two-phase", [])
    steps[-1]["flags"] = replace(steps[-1]["flags"], "--epochs-phase2", str(b["phase2_epochs"]))
    steps.append(dict(name="6-view TTA", recipe=steps[-1]["recipe"], flags=steps[-1]["flags"],
                      same_runs_as=steps[-1]["name"], result="tta"))
    for s in steps:
        s.setdefault("result", "single_view")
    return steps


def replace(flags, flag, value):
    flags = list(flags)
    flags[flags.index(flag) + 1] = value
    return flags


def flag_dict(step):
    """`{flag: value}` of a step's flags (a bare flag maps to True)."""
    out, flags = {}, step["flags"]
    i = 0
    while i < len(flags):
        if i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            out[flags[i]] = flags[i + 1]
            i += 2
        else:
            out[flags[i]] = True
            i += 1
    return out


def slug(name):
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")[:40]


def load_recipe(name):
    """The packaged recipe behind `recipes/<name>.py`."""
    from keras_har.recipes import get_recipe

    return get_recipe(name.replace("_", "-"))


def run_recipe(name, argv, run_dir):
    """One recipe run in this process (reused when run_dir has its result)."""
    import keras

    result = run_dir / ("metrics.json")
    timing = run_dir / "ladder_seconds.json"
    if result.exists():  # done before (this command run again): its time as measured then
        took = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
        return json.loads(result.read_text()), took
    start = time.time()
    if (run_dir / "state.json").exists():  # an interrupted run: continue it
        argv = ["--resume", str(run_dir), "--verbose", "0"]
    else:
        argv = argv + ["--output-dir", str(run_dir)]
    load_recipe(name).main(argv)
    keras.backend.clear_session()
    from keras_har.training import experiment

    experiment.release_run_dirs()
    took = time.time() - start
    timing.write_text(json.dumps({"seconds": took}))
    return json.loads(result.read_text()), took


def pretrain(args, budget, data_root, seed, out):
    run_dir = pathlib.Path(out) / "pretrain" / f"seed_{seed}"
    argv = ["--synthetic", "hard", "--data-root", str(data_root), "--epochs", str(budget["pretrain_epochs"]),
            "--seed", str(seed), "--workers", str(args.workers), "--verbose", "0"]
    metrics, seconds = run_recipe("videomae_pretrain", argv, run_dir)
    return run_dir / "model", seconds


def pair_accuracy(run_dir, result):
    """The fraction of test videos put in the right time-reversal pair, either
    direction (from the run's per-video predictions)."""
    from keras_har.data.synthetic_videos import HARD_PAIRS

    pair_of = {c: i for i, pair in enumerate(HARD_PAIRS) for c in pair}
    predictions = json.loads((pathlib.Path(run_dir) / "evaluation.json").read_text())[result]["predictions"]
    return float(np.mean([pair_of[p["label"]] == pair_of[p["predicted"]] for p in predictions]))


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=80)
    x = np.arange(len(rows))
    means = [r["mean"] for r in rows]
    stds = [r["std"] for r in rows]
    ax.bar(x, means, yerr=stds, capsize=3, color="#7aa6d8", label="mean ± sd over seeds")
    for i, r in enumerate(rows):
        ax.scatter([i] * len(r["values"]), r["values"], s=10, color="k", zorder=3)
    ax.axhline(0.1, color="gray", linestyle=":", linewidth=1, label="chance (10 classes)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{i + 1}. {r['step']}" for i, r in enumerate(rows)], rotation=30, ha="right",
                       fontsize=8)
    ax.set_ylabel("test top-1")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(rows):
    lines = ["| step | test top-1, mean ± sd | per seed | bootstrap 95% CI (mean of the seeds') "
             "| official 5x3 top-1 | right pair, either direction | minutes (3 seeds) |",
             "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        lines.append(
            f"| {i + 1}. {r['step']} | {r['mean']:.3f} ± {r['std']:.3f} | "
            f"{', '.join(f'{v:.3f}' for v in r['values'])} | [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | "
            f"{r['official_mean']:.3f} ± {r['official_std']:.3f} | {r['pairs']:.3f} | {r['minutes']:.1f} |")
    return "\n".join(lines)


def markdown(result):
    """The table of a run's ladder.json (its documentation page)."""
    b = result["budget"]
    rows = result["rows"]
    head = (f"`{result['budget_name']}` budget: {b['train_per_class']} training and {b['test_per_class']} test videos "
            f"per class of the hard synthetic profile (10 classes, five time-reversal pairs; chance 0.10), "
            f"{rows[0]['num_val_videos']} of the training videos held out for selection, {rows[0]['num_videos']} "
            f"test videos; random seeds {', '.join(map(str, result['seeds']))}; backend {result['backend']}; "
            f"{result['minutes']:.1f} min in all. \"test top-1\" is the single view, the 6-view TTA for the last "
            "step; \"right pair\" counts a prediction naming the class or its time-reversed partner.")
    if result["budget_name"] != "full":
        head += " At this budget the numbers check that every step runs end to end; they measure nothing about the steps."
    return head + "\n\n" + table(rows) + "\n\n![the ladder](ladder.png)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer videos and epochs (< 10 min).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", default=None, help="default runs/seed_ladder[_quick]")
    parser.add_argument("--workers", type=int, default=0, help="loader worker processes per run.")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    docs_pages.add_docs_args(parser)
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: the table and plot of the steps whose runs are done.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    budget = BUDGETS[name]
    out = pathlib.Path(args.output_dir or f"runs/seed_ladder{'' if name == 'full' else '_' + name}")
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_info.describe()
    started = time.time()

    from keras_har.data.synthetic_videos import ensure_synthetic_dataset

    data_root = out / "data"
    ensure_synthetic_dataset(data_root, profile="hard", train_per_class=budget["train_per_class"],
                             test_per_class=budget["test_per_class"])
    steps = ladder_steps(name, data_root, str(out / "pretrain" / "seed_{seed}" / "model"))
    results, rows = {}, []
    for step in steps:
        key = step.get("same_runs_as", step["name"])
        if key not in results:
            runs, seconds = [], []
            done = all((out / slug(key) / f"seed_{seed}" / "metrics.json").exists() for seed in args.seeds)
            if args.report_only and not done:
                print(f"{key}: not run yet", flush=True)
                continue
            for seed in args.seeds:
                extra = 0.0
                flags = [f.replace("{seed}", str(seed)) for f in step["flags"]]
                if step["name"] == "VideoMAE pre-trained" or "pretrain" in " ".join(flags):
                    pre_done = (out / "pretrain" / f"seed_{seed}" / "metrics.json").exists()
                    first = step["name"] == "VideoMAE pre-trained"
                    if not args.report_only or pre_done:
                        _, extra = pretrain(args, budget, data_root, seed, out)
                    extra = extra if first else 0.0  # counted once, in the step that needs it
                flags += ["--seed", str(seed), "--workers", str(args.workers), "--verbose", "0"]
                metrics, took = run_recipe(step["recipe"], flags, out / slug(key) / f"seed_{seed}")
                runs.append(metrics)
                seconds.append(took + extra)
                print(f"[{(time.time() - started) / 60:5.1f} min] {key}, seed {seed}: single view "
                      f"{metrics['single_view']['top1']:.3f}, tta {metrics['tta']['top1']:.3f}, "
                      f"official {metrics['official']['top1']:.3f} ({took + extra:.0f} s)", flush=True)
            results[key] = (runs, seconds)
        if key not in results:
            continue
        runs, seconds = results[key]
        values = np.array([m[step["result"]]["top1"] for m in runs])
        official = np.array([m["official"]["top1"] for m in runs])
        ci = np.array([m[step["result"]]["top1_ci95"] for m in runs])
        pairs = [pair_accuracy(out / slug(key) / f"seed_{seed}", step["result"]) for seed in args.seeds]
        rows.append(dict(
            step=step["name"], recipe=step["recipe"], flags=step["flags"], result=step["result"],
            values=values.tolist(), mean=float(values.mean()),
            std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            ci95=ci.mean(axis=0).tolist(), official_mean=float(official.mean()),
            official_std=float(official.std(ddof=1)) if len(official) > 1 else 0.0,
            pairs=float(np.mean(pairs)),
            minutes=0.0 if "same_runs_as" in step else sum(seconds) / 60,
            num_videos=runs[0]["num_videos"], num_val_videos=runs[0]["num_val_videos"],
            selection=runs[0]["selection"]))
    total = (time.time() - started) / 60
    import keras

    title = (f"improvement ladder, hard synthetic ({rows[0]['num_videos']} test videos), seeds "
             f"{', '.join(map(str, args.seeds))}{', --quick' if args.quick else ''}; {keras.backend.backend()}")
    result = dict(rows=rows, seeds=args.seeds, budget_name=name, minutes=total, backend=keras.backend.backend(),
                  budget=budget)
    (out / "ladder.json").write_text(json.dumps(result, indent=2))
    (out / "ladder.md").write_text(table(rows) + "\n")
    plot(rows, out / "ladder.png", title)
    if args.docs:
        pathlib.Path(args.docs).mkdir(parents=True, exist_ok=True)
        plot(rows, pathlib.Path(args.docs) / "ladder.png", title)
        docs_pages.write(args.docs, "seed_ladder", result, sys.argv[1:] if argv is None else argv,
                         args.docs_note, machine)
    print(table(rows))
    print(f"\n{total:.1f} min; {out / 'ladder.json'}, {out / 'ladder.md'}, {out / 'ladder.png'}")
    return rows


if __name__ == "__main__":
    main()

"""The seed runner (a stand-in recipe that writes metrics.json) and the
ladder's steps (one change each)."""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"

FAKE_RECIPE = '''
import argparse, json, pathlib
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int); p.add_argument("--output-dir"); p.add_argument("--bonus", type=float)
a = p.parse_args()
out = pathlib.Path(a.output_dir); out.mkdir(parents=True)
top1 = 0.5 + 0.1 * a.seed + a.bonus
summary = lambda t: {"top1": t, "top5": 1.0, "mean_class_accuracy": t / 2, "top1_ci95": [t - 0.1, t + 0.1]}
(out / "metrics.json").write_text(json.dumps({"selection": "validation", "single_view": summary(top1),
    "tta": summary(top1 + 0.01), "official": summary(top1 + 0.02), "num_videos": 30, "num_val_videos": 6}))
'''


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_seed_runner_writes_mean_std_and_values(tmp_path, capsys):
    seed_runs = load("seed_runs")
    recipe = tmp_path / "fake_recipe.py"
    recipe.write_text(FAKE_RECIPE)
    out = tmp_path / "seeds"
    seed_runs.main(["--seeds", "0", "1", "3", "--output-dir", str(out), "--", str(recipe), "--bonus", "0.05"])
    summary = json.loads((out / "summary.json").read_text())
    values = np.array([0.55, 0.65, 0.85])
    assert summary["seeds"] == [0, 1, 3] and summary["selection"] == ["validation"]
    assert summary["single_view"]["top1"]["values"] == pytest.approx(values.tolist())
    assert summary["single_view"]["top1"]["mean"] == pytest.approx(values.mean())
    assert summary["single_view"]["top1"]["std"] == pytest.approx(values.std(ddof=1))
    assert summary["official"]["top1"]["mean"] == pytest.approx(values.mean() + 0.02)
    assert summary["tta"]["top1_ci95"][0] == pytest.approx([0.46, 0.66])
    assert (out / "seed_3" / "metrics.json").exists()
    # A second call reuses the finished runs.
    mtime = (out / "seed_0" / "metrics.json").stat().st_mtime
    seed_runs.main(["--seeds", "0", "--output-dir", str(out), "--", str(recipe), "--bonus", "0.05"])
    assert (out / "seed_0" / "metrics.json").stat().st_mtime == mtime
    with pytest.raises(SystemExit, match="--seed"):
        seed_runs.main(["--output-dir", str(out), "--", str(recipe), "--seed", "1"])


def test_ladder_changes_one_thing_per_step():
    ladder = load("seed_ladder")
    steps = ladder.ladder_steps(quick=False, data_root="D", pretrained="P{seed}")
    assert [s["name"] for s in steps][0].startswith("per-frame crops")
    for before, after in zip(steps, steps[1:]):
        if after.get("same_runs_as"):
            assert after["same_runs_as"] == before["name"]
            continue
        a, b = ladder.flag_dict(before), ladder.flag_dict(after)
        changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
        assert len(changed) == 1 or before["recipe"] != after["recipe"], (before["name"], changed)

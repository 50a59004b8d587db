"""`benchmarks/gpu_check.py --smoke` runs the GPU check's phases on the CPU
(the current backend's training phase; transformers' reference under torch)
and writes the report; a phase that runs out of time loses only itself."""

import json
import math
import os
import pathlib
import subprocess
import sys

import keras

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def run_check(tmp_path, *flags, timeout=300):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--output", str(out), *flags],
                          env=env, capture_output=True, text=True, timeout=timeout)
    report_file = out / "gpu_check.json"
    assert report_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(report_file.read_text()), out


def test_smoke_run_on_this_backend(tmp_path):
    backend = keras.backend.backend()
    flags = ["--backends", backend if backend in ("jax", "torch") else "none"]
    if backend != "torch":
        flags.append("--no-reference")  # transformers' reference runs once, in the torch run
    proc, report, out = run_check(tmp_path, *flags)
    assert proc.returncode == 0, (proc.stdout[-3000:], (out / "gpu_check.log").read_text()[-5000:])
    phases = report["phases"]
    assert all(p["ok"] for p in phases.values()), {k: p.get("error") for k, p in phases.items()}
    assert report["passed"] and all(c["passed"] for c in report["checks"])

    data = phases["data"]["result"]
    assert data["videos"] == 8 and "prepared 8 of 8 videos" in data["prepare_output"]
    loader = phases["loader"]["result"]
    for source in ("raw", "prepared"):
        assert loader[source]["workers"] == 2 and loader[source]["clips_per_s"] > 0  # 2: no accelerator
    if backend in ("jax", "torch"):
        r = phases[f"keras_{backend}"]["result"]
        assert r["device"]["default_backend"] == "cpu"
        train, fit = r["train"], r["fit_through_loader"]
        assert train["variables_on"] == "cpu" and train["clips_per_s"] > 0
        assert (train["dtype_policy"], train["optimizer"], train["grad_accum"]) == ("mixed_bfloat16", "GroupedAdamW", 2)
        assert r["inference"]["batch"] == 4 and r["inference"]["clips_per_s"] > 0
        # Fresh weights predict ~uniformly over the 51 classes: the first epoch's
        # cross-entropy on Mixup's soft targets is ~ln(51); training brings it down.
        assert abs(fit["losses"][0] - math.log(51)) < 0.5, fit["losses"]
        assert fit["loss_went_down"] and fit["loss_last_quarter"] < fit["loss_first_quarter"] - 0.1
        assert fit["steps"] == fit["epochs"] * 2 and fit["workers"] == 2
        # The grain workers were seen (as this phase's child processes) and touched no CUDA.
        workers = r["workers_gpu"]
        assert len(workers["workers"]) >= 2 and workers["workers_touching_cuda"] == []
        assert "attention" in r and r["attention"]
    if backend == "torch":
        ref = phases["transformers"]["result"]
        assert ref["attn_implementation"] == "sdpa" and "SDPA" in ref["attention"]
        assert ref["train"]["clips_per_s"] > 0 and ref["inference"]["batch"] == 4
        assert {t["name"].split(":")[0] for t in report["targets"]} >= {"train", "inference"}
    # The table in gpu_check.md is the one --report prints from the JSON.
    table = (out / "gpu_check.md").read_text()
    assert "| source | workers | clips/s |" in table and "PASS phase loader ran" in table
    again = subprocess.run([sys.executable, str(SCRIPT), "--report", str(out / "gpu_check.json")],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == table


def test_a_phase_past_its_limit_loses_only_itself(tmp_path):
    proc, report, out = run_check(tmp_path, "--backends", "none", "--no-reference", "--limit", "loader=1")
    assert proc.returncode == 1
    phases = report["phases"]
    assert phases["loader"]["ok"] is False and phases["loader"]["error"] == "ran past its 1 s limit"
    assert phases["data"]["ok"] and phases["data"]["result"]["videos"] == 8
    assert "FAIL phase loader ran (ran past its 1 s limit)" in (out / "gpu_check.md").read_text()


def test_bad_flags_are_one_line_errors(tmp_path):
    for flags, message in ((["--backends", "tensorflow"], "'tensorflow' is not jax or torch"),
                           (["--limit", "loader"], "want PHASE=SECONDS"),
                           (["--limit", "nope=3"], "no phase 'nope'"),
                           (["--report", str(tmp_path / "missing.json")], "not a gpu_check.json")):
        proc = subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr, (flags, proc.stderr)


def test_loader_workers_import_no_backend_from_the_check():
    """The grain workers of the training phases run this script again as
    `__mp_main__` (multiprocessing's spawn): that imports neither Keras nor a
    backend, so the workers never start CUDA."""
    code = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='__mp_main__'); "
            "print(','.join(m for m in ('keras', 'keras_hub', 'jax', 'torch', 'tensorflow', 'transformers') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr[-2000:]

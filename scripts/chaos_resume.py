"""Kill a training run with SIGKILL at random moments, resume it each time, and
check that it ends exactly like a run that was never interrupted.

    KERAS_BACKEND=jax python scripts/chaos_resume.py --kills 30 --seed 1
    KERAS_BACKEND=jax python scripts/chaos_resume.py --kills 10 -- --dataset hmdb51 --data-root ...

The recipe (default recipes/videomae_two_phase.py, on the built-in synthetic
data with a short schedule) runs once uninterrupted as the reference. Then,
`--kills` times: the run is started (or resumed with --resume), killed with
SIGKILL at a random moment (seeded) once it has started training, and the
process table is checked: no process of the run (the grain workers, the
resource tracker) may outlive it by more than `--grace` seconds. Finally the
run is resumed to its end, and `metrics.json`, `label_map.json` and every
`history_phase*.csv` must be byte-identical to the reference, with no stale
temporary left in the run directory. Exit status 0 when all of that holds.
The test suite runs a small version of this (tests/test_run_integrity.py).
"""

import argparse
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMPARED = ("metrics.json", "label_map.json", "history_phase1.csv", "history_phase2.csv")
DEFAULT_FLAGS = ["--epochs-phase1", "4", "--epochs-phase2", "2", "--workers", "2", "--verbose", "2"]


def tagged_processes(tag):
    """pids of live processes whose environment carries `tag` (the run's children)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"KERAS_HAR_CHAOS_TAG={tag}".encode() in environ.split(b"\0") and "\nState:\tZ" not in status:
            found.append(int(entry.name))
    return found


def start(script, args, tag):
    env = {**os.environ, "KERAS_HAR_CHAOS_TAG": tag, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(script)] + args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_training(proc, timeout):
    """Read the run's output until it reports its run directory (data and model
    are being set up); returns what it printed."""
    out, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if "run directory" in line:
            break
    return "".join(out)


def stale_files(run_dir):
    run_dir = pathlib.Path(run_dir)
    store = run_dir / ".checkpoints"
    current = (run_dir / "checkpoints").resolve() if (run_dir / "checkpoints").exists() else None
    stale = [p for p in run_dir.glob(".tmp-*")] + [p for p in run_dir.glob(".checkpoints-*")]
    if store.is_dir():
        stale += [p for p in store.iterdir() if p.resolve() != current]
    return stale


def chaos(script, flags, work_dir, kills, seed, max_delay, grace, timeout, log=print):
    """Run the reference and the killed-and-resumed run; returns a list of
    problems (empty when everything holds)."""
    rng = random.Random(seed)
    work_dir = pathlib.Path(work_dir)
    reference, run = work_dir / "reference", work_dir / "chaos"
    tag = uuid.uuid4().hex
    problems = []
    result = subprocess.run([sys.executable, str(script)] + flags + ["--output-dir", str(reference)],
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        return [f"reference run failed: {result.stdout[-2000:]}{result.stderr[-2000:]}"]
    done_kills, attempts = 0, 0
    while done_kills < kills and attempts < kills * 3:
        attempts += 1
        args = ["--resume", str(run)] if (run / "config.json").exists() else flags + ["--output-dir", str(run)]
        proc = start(script, args, tag)
        wait_for_training(proc, timeout)
        time.sleep(rng.uniform(0, max_delay))
        if proc.poll() is not None:
            proc.stdout.read()
            if proc.returncode == 0:
                log(f"attempt {attempts}: the run finished before the kill; starting over")
                for path in run.glob("metrics.json"):
                    path.unlink()
                problems.append("the run finished before all kills: raise --max-delay or the epochs")
                break
            problems.append(f"attempt {attempts}: the run failed (exit {proc.returncode})")
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.read()
        done_kills += 1
        deadline = time.time() + grace
        while tagged_processes(tag) and time.time() < deadline:
            time.sleep(0.2)
        left = tagged_processes(tag)
        log(f"kill {done_kills}/{kills}: state {_state(run)}; processes left after {grace:.0f} s: {len(left)}")
        if left:
            problems.append(f"kill {done_kills}: processes {left} outlived the run by {grace} s")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    final = subprocess.run([sys.executable, str(script), "--resume", str(run)], capture_output=True,
                           text=True, timeout=timeout)
    if final.returncode:
        return problems + [f"final resume failed: {final.stdout[-2000:]}{final.stderr[-2000:]}"]
    for name in COMPARED:
        a, b = reference / name, run / name
        if a.exists() != b.exists() or (a.exists() and a.read_bytes() != b.read_bytes()):
            problems.append(f"{name} differs from the uninterrupted run's")
    stale = stale_files(run)
    if stale:
        problems.append(f"stale temporaries left: {[str(p) for p in stale]}")
    return problems


def _state(run):
    path = pathlib.Path(run) / "state.json"
    try:
        return path.read_text().replace("\n", "").replace("  ", "")
    except OSError:
        return "(no committed epoch yet)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", default=str(ROOT / "recipes" / "videomae_two_phase.py"))
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=8.0,
                        help="seconds after the run reports its directory within which it is killed")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds processes may outlive a kill")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("recipe_flags", nargs="*", help="after --: the recipe's flags")
    args = parser.parse_args(argv)
    work_dir = pathlib.Path(args.work_dir or f"runs/chaos-{time.strftime('%Y%m%d-%H%M%S')}")
    flags = args.recipe_flags or DEFAULT_FLAGS
    problems = chaos(args.script, flags, work_dir, args.kills, args.seed, args.max_delay, args.grace,
                     args.timeout)
    for p in problems:
        print("FAIL:", p)
    print("chaos: " + ("all kills resumed to the uninterrupted result" if not problems
                       else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Kill a training run with SIGKILL at random moments, resume it each time, and
check that it ends exactly like a run that was never interrupted.

    KERAS_BACKEND=jax python scripts/chaos_resume.py --kills 30 --seed 1
    KERAS_BACKEND=jax python scripts/chaos_resume.py --kills 10 --signals INT,TERM,KILL
    KERAS_BACKEND=jax python scripts/chaos_resume.py --kills 10 -- --dataset hmdb51 --data-root ...

The recipe (default recipes/videomae_two_phase.py, on the built-in synthetic
data with a short schedule) runs once uninterrupted as the reference, which
also measures how long a run lasts after it reports its run directory. Then,
`--kills` times: the run is started (or resumed with --resume) and killed with
SIGKILL at a seeded random fraction of that length after it reports its run
directory, so kills land in set-up, training, epoch commits and the final
evaluation alike; the process table is checked: no process of the run (the
grain workers, the resource tracker) may outlive it by more than `--grace`
seconds. A run that reaches its end between kills is compared with the
reference and a new run starts. Finally the last run is resumed to its end,
and `metrics.json`, `label_map.json` and every `history_phase*.csv` must be
byte-identical to the reference, with no stale temporary left in the run
directory. Exit status 0 when all of that holds. The test suite runs a small
version of this (tests/test_run_integrity.py).
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
STARTED = "run directory"  # the line a run logs once its directory is set up


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


def start(script, args, tag, log_file):
    """The recipe as a process writing its output to `log_file` (a file, not a
    pipe, so a run is never held up by output nobody reads), in a process
    group of its own (as a terminal starts it)."""
    env = {**os.environ, "KERAS_HAR_CHAOS_TAG": tag, "PYTHONUNBUFFERED": "1"}
    with open(log_file, "w") as out:
        return subprocess.Popen([sys.executable, str(script)] + args, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc, sig, log_file, timeout=60):
    """Send `sig` (SIGINT: to the run's process group, as Ctrl-C; others: to
    the process) and wait for the end; a problem, or None. SIGINT and SIGTERM
    must end the run with one line and status 128 + signal, no traceback."""
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"{sig.name} did not end the run within {timeout} s"
    if sig == signal.SIGKILL:
        return None
    output = pathlib.Path(log_file).read_text(errors="replace")
    if proc.returncode not in (0, 128 + sig):  # 0: it ended just before the signal
        return f"{sig.name}: exit status {proc.returncode}: {output[-2000:]}"
    if proc.returncode and ("Traceback" in output or "Exception ignored" in output):
        return f"{sig.name}: a traceback in the output: {output[-2000:]}"
    return None


def wait_for_start(proc, log_file, timeout, marker=STARTED):
    """Wait until the run prints `marker` (or ends); True if it did."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if marker in pathlib.Path(log_file).read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def stale_files(run_dir, keep=2):
    """Temporaries, and commit directories beyond the `keep` commits a run keeps."""
    from keras_har.training.checkpoints import kept_commits

    run_dir = pathlib.Path(run_dir)
    store = run_dir / ".checkpoints"
    kept = set(kept_commits(run_dir, keep)) if (run_dir / "checkpoints").exists() else set()
    stale = [p for p in run_dir.glob(".tmp-*")] + [p for p in run_dir.glob(".checkpoints-*")]
    if store.is_dir():
        stale += [p for p in store.iterdir() if p.resolve() not in kept]
    return stale


def run_args(run, flags):
    """The recipe's arguments for `run`: resume it once it has a config, else start it."""
    return ["--resume", str(run)] if (run / "config.json").exists() else flags + ["--output-dir", str(run)]


def compare(reference, run):
    """Problems of a finished run against the reference (empty when identical)."""
    problems = []
    for name in COMPARED:
        a, b = reference / name, run / name
        if a.exists() != b.exists() or (a.exists() and a.read_bytes() != b.read_bytes()):
            problems.append(f"{run.name}: {name} differs from the uninterrupted run's")
    stale = stale_files(run)
    if stale:
        problems.append(f"{run.name}: stale temporaries left: {[str(p) for p in stale]}")
    return problems


def chaos(script, flags, work_dir, kills, seed, grace, timeout, log=print, max_delay=None, marker=STARTED,
          span=1.0, signals=(signal.SIGKILL,)):
    """Run the reference and the killed-and-resumed runs; returns a list of
    problems (empty when everything holds). Kills come a seeded random
    fraction of `span` x the reference's length from `marker` to its end (or
    of `max_delay` seconds) after a run prints `marker` (by default once it
    reports its directory; "Epoch " kills only once training has started).
    A `span` below 1 keeps attempts short: the run still progresses across
    kills, from one resume to the next. Each kill sends one of `signals`
    (seeded choice; SIGINT to the process group)."""
    rng = random.Random(seed)
    work_dir = pathlib.Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    reference = work_dir / "reference"
    tag = uuid.uuid4().hex
    proc = start(script, flags + ["--output-dir", str(reference)], tag + "-reference", work_dir / "reference.log")
    began = time.time() if wait_for_start(proc, work_dir / "reference.log", timeout, marker) else None
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
    if proc.returncode or began is None:
        return [f"reference run failed: {(work_dir / 'reference.log').read_text(errors='replace')[-3000:]}"]
    length = max_delay or span * (time.time() - began)
    log(f"reference run: {time.time() - began:.1f} s after {marker.strip()!r}; kills up to {length:.1f} s after it")
    problems, done_kills, attempts, episode = [], 0, 0, 0
    run = work_dir / f"chaos{episode}"
    while done_kills < kills and attempts < kills * 3:
        attempts += 1
        log_file = work_dir / f"attempt{attempts}.log"
        proc = start(script, run_args(run, flags), tag, log_file)
        wait_for_start(proc, log_file, timeout, marker)
        delay = rng.uniform(0, length)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is not None:  # the run ended before its kill
            if proc.returncode:
                problems.append(f"attempt {attempts}: the run failed (exit {proc.returncode}): "
                                f"{log_file.read_text(errors='replace')[-2000:]}")
                break
            problems += compare(reference, run)
            log(f"attempt {attempts}: {run.name} reached its end before the kill (after {delay:.1f} s); "
                "compared with the reference, a new run starts")
            episode += 1
            run = work_dir / f"chaos{episode}"
            continue
        sig = rng.choice(signals) if len(signals) > 1 else signals[0]
        problem = stop(proc, sig, log_file)
        if problem:
            problems.append(f"attempt {attempts}: {problem}")
        done_kills += 1
        deadline = time.time() + grace
        while tagged_processes(tag) and time.time() < deadline:
            time.sleep(0.2)
        left = tagged_processes(tag)
        log(f"kill {done_kills}/{kills} ({sig.name}) after {delay:.1f} s: {run.name} state {_state(run)}; "
            f"processes left after {grace:.0f} s: {len(left)}")
        if left:
            problems.append(f"kill {done_kills}: processes {left} outlived the run by {grace} s")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    if done_kills < kills and not problems:
        problems.append(f"only {done_kills} of {kills} kills in {attempts} attempts")
    final = subprocess.run([sys.executable, str(script)] + run_args(run, flags), capture_output=True, text=True,
                           timeout=timeout)
    if final.returncode:
        return problems + [f"final resume failed: {final.stdout[-2000:]}{final.stderr[-2000:]}"]
    return problems + compare(reference, run)


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
    parser.add_argument("--max-delay", type=float, default=None,
                        help="kill within this many seconds after the run reports its directory "
                             "(default: the uninterrupted run's length, so kills land anywhere in a run)")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds processes may outlive a kill")
    parser.add_argument("--signals", default="KILL",
                        help="comma-separated signals to stop runs with, chosen at random per kill "
                             "(KILL, INT: Ctrl-C to the process group, TERM)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("recipe_flags", nargs="*", help="after --: the recipe's flags")
    args = parser.parse_args(argv)
    work_dir = pathlib.Path(args.work_dir or f"runs/chaos-{time.strftime('%Y%m%d-%H%M%S')}")
    flags = args.recipe_flags or DEFAULT_FLAGS
    signals = tuple(signal.Signals[f"SIG{name.strip().upper()}"] for name in args.signals.split(","))
    problems = chaos(args.script, flags, work_dir, args.kills, args.seed, args.grace, args.timeout,
                     max_delay=args.max_delay, signals=signals)
    for p in problems:
        print("FAIL:", p)
    print("chaos: " + ("all kills resumed to the uninterrupted result" if not problems
                       else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

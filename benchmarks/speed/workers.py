"""The worker processes: one per group of jobs, each with its Keras backend and
allocator in its environment, re-running backend_speed.py with `--worker`; their
rows are collected as they arrive, and a job whose rows never came (a crash, the
timeout) gets error rows."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading

from speed.jobs import KEYS, RESULT_TAG, job_modes

ENTRY_POINT = pathlib.Path(__file__).resolve().parents[1] / "backend_speed.py"

# Where tcmalloc usually lives (Debian / Ubuntu / Fedora), for --allocator auto.
TCMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)


def find_allocator(choice):
    """The malloc library to preload into the workers (None: the system's)."""
    if choice == "system":
        return None
    if choice != "auto":
        if not pathlib.Path(choice).exists():
            raise FileNotFoundError(f"--allocator {choice}: no such file")
        return choice
    return next((p for p in TCMALLOC_PATHS if pathlib.Path(p).exists()), None)


def worker_env(backend, allocator):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    if allocator:
        env["LD_PRELOAD"] = " ".join(filter(None, [allocator, os.environ.get("LD_PRELOAD", "")]))
        env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(2**40))  # no "large alloc" lines
    return env


def run_group(jobs, env, timeout, log, on_row):
    """Runs jobs in one worker process; calls on_row(row) as each row arrives."""
    cmd = [sys.executable, str(ENTRY_POINT), "--worker", json.dumps(jobs)]
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

"""Measuring inside a worker: a call's first and steady-state time, a matmul's
GFLOP/s, the process's peak RSS."""

import statistics
import time


def max_rss_mb():
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


def matmul_gflops(run, sync, size, repeats=3):
    """Best GFLOP/s of `run` (one size^2 matmul) over `repeats` calls after a warm-up."""
    run()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9

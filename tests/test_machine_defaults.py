"""Machine defaults: a CPU run keeps 2 loader workers and float32; with a
bf16 accelerator the workers come from the cores available and the policy is
mixed bfloat16; flags given on the command line win."""

import argparse
import os
import subprocess
import sys

import pytest

from keras_har import flags as command_line
from keras_har.training import experiment, machine_defaults

H200 = {"platform": "gpu", "name": "NVIDIA H200", "bfloat16": True}
V100 = {"platform": "gpu", "name": "Tesla V100", "bfloat16": False}


def parse(*flags):
    parser = argparse.ArgumentParser()
    command_line.add_data_args(parser)
    command_line.add_run_args(parser)
    return parser.parse_args(list(flags))


def test_this_machine_has_no_accelerator_and_keeps_the_cpu_defaults():
    assert machine_defaults.accelerator() is None
    args = experiment.resolve_defaults(parse(), {}, {})
    assert (args.workers, args.mixed_precision) == (2, False)


def test_an_accelerator_gets_the_cores_and_bfloat16(monkeypatch):
    monkeypatch.setattr(machine_defaults, "accelerator", lambda: H200)
    monkeypatch.setattr(machine_defaults, "available_cores", lambda: 16)
    args = experiment.resolve_defaults(parse(), {}, {})
    assert (args.workers, args.mixed_precision) == (14, True)
    monkeypatch.setattr(machine_defaults, "available_cores", lambda: 2)
    assert machine_defaults.loader_workers(H200) == 2  # never fewer than a CPU run's
    assert machine_defaults.mixed_precision(V100) is False  # no bf16 before compute capability 8.0


@pytest.mark.parametrize("flags, expected", [
    (("--workers", "3", "--no-mixed-precision"), (3, False)),
    (("--workers", "0", "--mixed-precision"), (0, True)),
])
def test_flags_override_the_machine(monkeypatch, flags, expected):
    monkeypatch.setattr(machine_defaults, "accelerator", lambda: H200)
    args = experiment.resolve_defaults(parse(*flags), {}, {})
    assert (args.workers, args.mixed_precision) == expected


def test_available_cores_follow_the_affinity():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from keras_har.training import machine_defaults as m; print(m.available_cores())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"

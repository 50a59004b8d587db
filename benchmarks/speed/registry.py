"""The kinds of rows and the modes a backend_speed run knows: the extension point.

A row is one (model, impl, backend, variant, dtype) job timed in one mode at
one batch size. Everything else (planning the jobs, worker processes, timing,
FLOPs, ratios to the reference, the pooled matmul peaks, the table, the JSON)
is generic, so a new kind of row is one new class or function plus a line here:

- A new implementation (as the exported runtimes -- ONNX Runtime, OpenVINO,
  TF SavedModel, LiteRT -- were added): a `runner.Runner` subclass in its own
  module (`speed/exported_runtimes.py`) with `impls` naming its rows, `make_jobs`
  (which jobs a run has; a flag it reads is added to backend_speed.py's parser,
  and an inference-only runner gives its jobs `train: False`),
  `matmul_kernels` (whose matmul peak its rows are compared with), optionally
  `cleanup` (after the run) and `extra_fields` (measured once per job, e.g. an
  accuracy cost) and the worker-side methods; then append it to RUNNERS. Each job runs in a worker
  whose KERAS_BACKEND is the job's `backend`.
- A new mode: a `runner.Mode` whose `step(runner, cfg, batch)` returns the
  callable to time (from a `Runner` method that the runners implement; it may
  raise for a setting it does not cover, and that row reports the error),
  `models` if it applies to some models only, and its own `clip_flops` if its
  FLOPs are not a multiple of the classifier's forward pass; appended to
  MODES, it is selected with `--modes <name><batch>`, so the default modes
  are unchanged. `runner.PRETRAIN` is one: a VideoMAE pre-training step
  (`Runner.pretrain_fn`, implemented by KerasImpl and TorchReference) against
  transformers' VideoMAEForPreTraining, `--modes pretrain2`.

A mode's rows run in their own worker process in full runs (jobs.split_by_mode).
"""

from speed.exported_runtimes import ExportedRuntime
from speed.keras_models import KerasImpl
from speed.runner import INFERENCE, PRETRAIN, TRAIN
from speed.torch_references import TorchReference

RUNNERS = (KerasImpl, TorchReference, ExportedRuntime)  # each model's jobs are made in this order
MODES = (INFERENCE, TRAIN, PRETRAIN)  # a job's rows come in this order


IMPLS = {impl: cls for cls in RUNNERS for impl in cls.impls}  # a row's impl -> its Runner class


def runner_class(impl):
    """The Runner class whose rows have this `impl`."""
    if impl not in IMPLS:
        raise KeyError(f"no benchmark runner for impl {impl!r} (known: {', '.join(IMPLS)})")
    return IMPLS[impl]


def mode(name):
    """The Mode whose rows have this `mode`."""
    return next(m for m in MODES if m.name == name)

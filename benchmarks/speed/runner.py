"""What every kind of benchmark row implements (`Runner`) and what a timed step
is (`Mode`); the built-in modes `INFERENCE`, `TRAIN` and `PRETRAIN` (VideoMAE
masked-autoencoder pre-training, `--modes pretrain2`). `registry.py` lists the
runners and modes a run uses."""

import abc
import dataclasses
from typing import Callable

from speed.configs import (INFER_BATCHES, NUM_CLASSES, PRETRAIN_BATCH, PRETRAIN_MASK_RATIO, PRETRAIN_MASKING,
                           TRAIN_BATCH, model_flops, pretrain_flops)


class Runner(abc.ABC):
    """Builds one model in one framework and dtype and hands out the calls to time.

    The class side runs in the driver process (nothing heavy imported): `impls`
    names its rows' `impl`, `make_jobs` says which jobs a run has, and
    `matmul_kernels` says whose matmul peak its rows are compared with. An
    instance lives in a worker process whose KERAS_BACKEND is the job's
    `backend` (see jobs.run_job for the order of the calls).
    """

    impls = ()  # the `impl` values of this runner's rows
    optimizer_name = None  # the rows' `optimizer` (the training step's)

    @classmethod
    @abc.abstractmethod
    def make_jobs(cls, model, args, common):
        """The jobs (dicts: `common` plus model, impl, backend, variant, dtype
        and optionally `train: False`) this runner adds for `model`, given the
        parsed command line `args`."""

    @classmethod
    @abc.abstractmethod
    def matmul_kernels(cls, row):
        """(framework, kernels): rows with the same pair (and dtype, device)
        share one pooled matmul peak in the report."""

    @classmethod
    @abc.abstractmethod
    def from_job(cls, job):
        """The runner for one job, in its worker."""

    @abc.abstractmethod
    def device(self):
        """Where the model runs, e.g. "cpu" or "cuda:<name>"."""

    @classmethod
    def preload_allocator(cls, job):
        """Whether this job's worker may run with the run's preloaded malloc
        (tcmalloc); False for a library that breaks under it."""
        return True

    @classmethod
    def cleanup(cls, args):
        """After the run, in the driver: removes what `make_jobs` left behind
        (e.g. a temporary directory)."""

    def extra_fields(self, cfg):
        """Fields added to each of the job's rows, measured once after `build`
        (e.g. an accuracy cost); a failure is reported in the rows as
        `extra_fields_error`."""
        return {}

    def device_peak_mb(self):
        """Peak accelerator memory of this process (None on the CPU)."""
        return None

    @abc.abstractmethod
    def framework_version(self):
        """The versions that produced the row, e.g. "keras 3.x, jax 0.x"."""

    def sync(self):
        """Waits for queued device work (a no-op on the CPU)."""

    @abc.abstractmethod
    def matmul_peak(self, dtype, size):
        """Best GFLOP/s of a size^2 matmul in this framework and dtype (None:
        no matmul to time, e.g. a runtime that only runs a model file; the
        rows then have no peak fraction)."""

    @abc.abstractmethod
    def build(self, model, cfg, dtype):
        """Builds `model` ("videomae" / "vit") at `cfg`; returns its parameter count."""

    @abc.abstractmethod
    def compile(self, training):
        """Prepares the model for the next mode's calls."""

    @abc.abstractmethod
    def videos(self, cfg, batch):
        """A batch of random clips in this framework's layout."""

    @abc.abstractmethod
    def inference_fn(self, videos):
        """The inference call to time."""

    def train_fn(self, videos, labels):
        """The training step to time (labels one-hot, float32)."""
        raise NotImplementedError(f"{type(self).__name__} has no training step")

    def pretrain_fn(self, cfg, videos, bool_masked_pos):
        """The VideoMAE pre-training step to time (forward, masked-pixel loss,
        backward, optimizer update) for `cfg` (its `decoder_*` sizes), on the
        given clips and `bool_masked_pos` (numpy bool, (batch, tokens))."""
        raise NotImplementedError(f"{type(self).__name__} has no pre-training step")


@dataclasses.dataclass(frozen=True)
class Mode:
    """A kind of timed step: the row's `mode`, the batch sizes it runs (the
    `--modes` names are `<name><batch>`), whether it trains (the runner is
    compiled for training; jobs with `train: False` skip it), its FLOPs per clip
    as a multiple of the forward pass, `step(runner, cfg, batch)`, which
    returns the callable to time, and the models it applies to (None: all;
    the other models' jobs skip it)."""

    name: str
    batches: tuple
    training: bool
    flops_factor: int
    step: Callable
    models: tuple = None

    def applies_to(self, model):
        return self.models is None or model in self.models

    def clip_flops(self, model, cfg):
        """FLOPs of one clip's step (a mode whose step is not a multiple of the
        classifier's forward pass, such as pre-training, overrides this)."""
        return self.flops_factor * model_flops(model, cfg)


def inference_step(runner, cfg, batch):
    return runner.inference_fn(runner.videos(cfg, batch))


def train_step(runner, cfg, batch):
    import numpy as np

    videos = runner.videos(cfg, batch)
    labels = np.eye(NUM_CLASSES, dtype="float32")[np.arange(batch) % NUM_CLASSES]
    return runner.train_fn(videos, labels)


class PretrainMode(Mode):
    """VideoMAE pre-training: its FLOPs are not a multiple of the classifier's
    forward pass (the encoder sees the visible tokens only)."""

    def clip_flops(self, model, cfg):
        return pretrain_flops(cfg, PRETRAIN_MASK_RATIO)


def pretrain_masks(cfg, batch):
    """The same `bool_masked_pos` (numpy, (batch, tokens)) for every row: tube
    masks at PRETRAIN_MASK_RATIO drawn by keras-har's loader masking, seed 0."""
    import numpy as np

    from keras_har.data.masking import MaskGenerator

    masks = MaskGenerator(cfg["num_frames"], cfg["image_size"], cfg["patch_size"], cfg["tubelet_size"],
                          PRETRAIN_MASK_RATIO, PRETRAIN_MASKING)
    rng = np.random.default_rng(0)
    return np.stack([masks(rng) for _ in range(batch)])


def pretrain_step(runner, cfg, batch):
    return runner.pretrain_fn(cfg, runner.videos(cfg, batch), pretrain_masks(cfg, batch))


INFERENCE = Mode("inference", INFER_BATCHES, training=False, flops_factor=1, step=inference_step)
TRAIN = Mode("train", (TRAIN_BATCH,), training=True, flops_factor=3, step=train_step)
PRETRAIN = PretrainMode("pretrain", (PRETRAIN_BATCH,), training=True, flops_factor=3, step=pretrain_step,
                        models=("videomae",))

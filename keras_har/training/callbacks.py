"""Callbacks of the recipes: run commits (per epoch, every N steps, on a stop request), and a NaN guard."""

import logging
import math
import pathlib

import keras

from keras_har.data.pipeline import warn_skipped
from keras_har.training import checkpoints
from keras_har.utils import interrupts

logger = logging.getLogger("keras_har")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class RunCheckpoint(keras.callbacks.Callback):
    """Commits of a phase (`checkpoints.commit_epoch`, one atomic rename each):
    after every epoch, the last weights with the optimizer state, the best
    weights of every phase by `monitor` (a hard link when unchanged),
    `progress.npz` and `state.json` (phase, epochs done, best value); inside
    an epoch, every `every_steps` steps and when a stop is requested
    (`interrupts`), the same with the steps done in `state.json` and the
    epoch's metric accumulators in `progress.npz`. A kill at any moment leaves
    the previous commit or this one, complete; a stop request raises
    `RunInterrupted` once its commit is written. `state` is the dict this
    phase resumes from; `resume_step` > 0 resumes inside epoch
    `phase{k}_epochs_done + 1`, where `fit` then runs the epoch's remaining
    steps and stops (`fit_segments`).
    """

    def __init__(self, run_dir, phase, monitor="val_top1", state=None, every_steps=0,
                 keep=checkpoints.KEEP, steps_per_epoch=None, resume_step=0):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.phase = phase
        self.monitor = monitor
        self.state = dict(state or {})
        self.state.pop(f"phase{phase}_step", None)
        self.best = self.state.get(f"phase{phase}_best", -math.inf)
        self.every_steps = int(every_steps or 0)
        self.keep = keep
        self.steps_per_epoch = steps_per_epoch
        self.resume_epoch = int(self.state.get(f"phase{phase}_epochs_done", 0)) if resume_step else None
        self.resume_step = int(resume_step)
        self.epoch, self.offset = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.offset = self.resume_step if epoch == self.resume_epoch else 0
        if self.offset:  # after fit's reset_metrics: the epoch's accumulators so far
            checkpoints.load_progress(self.model, self.run_dir / checkpoints.COMMITTED / checkpoints.PROGRESS)

    def on_train_batch_end(self, batch, logs=None):
        step = self.offset + batch + 1
        if self.steps_per_epoch is not None and step >= self.steps_per_epoch:
            return  # the epoch's own commit follows its validation
        stop = interrupts.requested() is not None
        if stop or (self.every_steps and step % self.every_steps == 0):
            self._commit_step(step)
        if stop:
            interrupts.check()

    def _commit_step(self, step):
        state = {**self.state, "phase": self.phase, f"phase{self.phase}_epochs_done": self.epoch,
                 f"phase{self.phase}_step": step, f"phase{self.phase}_best": self.best}
        checkpoints.commit_epoch(
            self.run_dir, f"phase{self.phase}-epoch{self.epoch + 1:04d}-step{step:06d}",
            self._files(), state, carry=[f"best_phase{k}.weights.h5" for k in (1, 2)], keep=self.keep,
        )

    def _files(self):
        model = self.model  # under JAX this syncs the training state into the variables
        return {"last.weights.h5": model.save_weights,
                checkpoints.PROGRESS: lambda path: checkpoints.save_progress(model, path)}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, value in logs.items():
            if isinstance(value, float) and not math.isfinite(value) and "loss" in key:
                return  # NaNGuard stops the run; keep the last good files.
        files = self._files()
        value = logs.get(self.monitor)
        improved = value is not None and value > self.best
        if improved:
            self.best = float(value)
            files[f"best_phase{self.phase}.weights.h5"] = self.model.save_weights
        state = {
            **self.state,
            "phase": self.phase,
            f"phase{self.phase}_epochs_done": epoch + 1,
            f"phase{self.phase}_best": self.best,
        }
        checkpoints.commit_epoch(
            self.run_dir, f"phase{self.phase}-epoch{epoch + 1:04d}", files, state,
            carry=[f"best_phase{k}.weights.h5" for k in (1, 2)], keep=self.keep,
        )
        self.state = state
        if improved:
            logger.info("phase %d epoch %d: new best %s=%.4f", self.phase, epoch + 1, self.monitor, value)
        if epoch == self.resume_epoch:
            self.model.stop_training = True  # the partial epoch's `fit` ends here
            self.resume_epoch = None
        interrupts.check()


def fit_segments(epochs_done, resume_step, epochs):
    """`(initial_epoch, first_step)` of each `fit` call a phase needs: the rest
    of a partly done epoch on its own (its `fit` runs `steps - first_step`
    steps), then the whole epochs after it."""
    if resume_step and epochs_done < epochs:
        yield epochs_done, resume_step
        epochs_done += 1
    if epochs_done < epochs:
        yield epochs_done, 0


class NaNGuard(keras.callbacks.Callback):
    """Stop at the first non-finite loss with a clear error; the checkpoints of
    the last good epoch are left as they were."""

    def __init__(self, run_dir=None):
        super().__init__()
        self.run_dir = run_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            where = f" The last good checkpoint is in {self.run_dir}/checkpoints." if self.run_dir else ""
            raise NonFiniteLossError(
                f"Loss became {loss} at epoch {self.epoch + 1}, batch {batch + 1}: stopping. "
                f"Lower the learning rate, or check the inputs for NaNs.{where}"
            )


class BadVideoReport(keras.callbacks.Callback):
    """At the end of every epoch, how many unreadable videos the loader skipped."""

    def __init__(self, loader):
        super().__init__()
        self.loader = loader
        self.seen = 0

    def on_epoch_end(self, epoch, logs=None):
        entries = self.loader.bad_videos()
        warn_skipped(entries[self.seen:], f"in epoch {epoch + 1}", self.loader.sampler.bad_log.path)
        self.seen = len(entries)

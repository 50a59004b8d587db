"""Callbacks of the recipes: checkpoints per epoch, and a NaN guard."""

import logging
import math
import pathlib

import keras

from keras_har.data.pipeline import warn_skipped
from keras_har.training import checkpoints

logger = logging.getLogger("keras_har")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class RunCheckpoint(keras.callbacks.Callback):
    """After every epoch, one commit (`checkpoints.commit_epoch`): the last
    weights with the optimizer state, the best weights of every phase by
    `monitor` (a hard link when unchanged), and `state.json` (phase, epochs
    done, best value). A kill at any moment leaves the previous epoch or this
    one, complete. `state` is the dict this phase resumes from.
    """

    def __init__(self, run_dir, phase, monitor="val_top1", state=None):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.phase = phase
        self.monitor = monitor
        self.state = dict(state or {})
        self.best = self.state.get(f"phase{phase}_best", -math.inf)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, value in logs.items():
            if isinstance(value, float) and not math.isfinite(value) and "loss" in key:
                return  # NaNGuard stops the run; keep the last good files.
        files = {"last.weights.h5": self.model.save_weights}
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
            carry=[f"best_phase{k}.weights.h5" for k in (1, 2)],
        )
        self.state = state
        if improved:
            logger.info("phase %d epoch %d: new best %s=%.4f", self.phase, epoch + 1, self.monitor, value)


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

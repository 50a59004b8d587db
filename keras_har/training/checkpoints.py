"""Run checkpoints that survive a kill: weights, optimizer state, run state.

Every file is written to a temporary name in the same directory and moved into
place with `os.replace`, so a run killed while saving keeps the previous
checkpoint intact.
"""

import json
import os
import pathlib
import uuid

import keras
import numpy as np


def atomic_write(path, write):
    """Call `write(tmp_path)` then atomically move the result to `path`.

    The temporary name keeps the real file name as its suffix, since Keras
    insists on its own (".weights.h5").
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path, data):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)

    atomic_write(path, write)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def save_weights(model, path):
    atomic_write(path, model.save_weights)


def save_optimizer_state(optimizer, path):
    """All optimizer variables (iterations, moments, accumulators) to .npz."""
    arrays = {f"v{i:05d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
    names = [v.path for v in optimizer.variables]

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, __names__=np.array(names), **arrays)

    atomic_write(path, write)


def load_optimizer_state(optimizer, model, path):
    """Restore what `save_optimizer_state` wrote into a (built) optimizer."""
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    with np.load(path) as data:
        names = list(data["__names__"])
        variables = optimizer.variables
        if len(names) != len(variables):
            raise ValueError(
                f"{path}: {len(names)} optimizer variables saved, the optimizer has "
                f"{len(variables)}: the model or optimizer settings differ from the run's."
            )
        for i, variable in enumerate(variables):
            value = data[f"v{i:05d}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"{path}: optimizer variable {names[i]} has shape {value.shape}, "
                    f"expected {tuple(variable.shape)}."
                )
            variable.assign(value)

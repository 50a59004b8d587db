"""Run checkpoints that survive a kill: weights with the optimizer state, run state.

A model's `.weights.h5` (Keras' `save_weights`) holds the optimizer's
variables too (iterations, moments, gradient accumulators) once the model is
compiled and trained: one file restores both (`load_checkpoint`).

Every file is written to a temporary name in the same directory and moved into
place with `os.replace`, so a run killed while saving keeps the previous
checkpoint intact.
"""

import json
import os
import pathlib
import uuid


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


def load_checkpoint(model, path):
    """Weights and optimizer state from a `.weights.h5` that `save_weights`
    wrote for a compiled model. The optimizer is built first (Keras skips the
    optimizer's variables of a file otherwise); a file without them is an error
    naming it."""
    import h5py

    path = pathlib.Path(path)
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    with h5py.File(path, "r") as f:
        saved = len(f["optimizer/vars"]) if "optimizer/vars" in f else 0
    if optimizer is not None and saved != len(optimizer.variables):
        raise ValueError(
            f"{path}: holds {saved} optimizer variables where the optimizer has "
            f"{len(optimizer.variables)}: not a training checkpoint of this model and optimizer."
        )
    model.load_weights(path)

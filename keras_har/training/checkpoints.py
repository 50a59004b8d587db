"""Run checkpoints that survive a kill: weights with the optimizer state, run state.

A model's `.weights.h5` (Keras' `save_weights`) holds the optimizer's
variables too (iterations, moments, gradient accumulators) once the model is
compiled and trained: one file restores both (`load_checkpoint`).

**One commit point per epoch** (`commit_epoch`): an epoch's files (last
weights, the best weights of each phase, `state.json`) are written into a
fresh directory `RUN/.checkpoints/<name>-<random>/`, and the epoch is committed by one
atomic `os.replace` of the symlink `RUN/checkpoints` onto it. Whatever the
moment a run is killed, `RUN/checkpoints/` (and `RUN/state.json`, a symlink
into it) is either the previous complete epoch or the new complete epoch,
never a mix. `clean_stale` removes what an interrupted commit left behind.
Single files elsewhere (`metrics.json`, ...) are written to a temporary name
and moved into place (`atomic_write`).
"""

import errno
import json
import os
import pathlib
import shutil
import uuid

COMMITTED = "checkpoints"  # the symlink: the committed epoch
STORE = ".checkpoints"  # the epoch directories it points into
STATE = "state.json"

# Called between the file operations of a commit with the epoch's name and a
# label naming the step (tests inject faults here; None in normal runs).
fault_hook = None


def _step(name, label):
    if fault_hook is not None:
        fault_hook(name, label)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems cannot fsync a directory
        if e.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


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
    """A JSON file; a broken one is a ValueError naming it and what to do."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: corrupt JSON ({e}); restore it, or start a new run.") from None


def committed_dir(run_dir):
    """The directory of the last committed epoch, or None before the first."""
    link = pathlib.Path(run_dir) / COMMITTED
    if not link.exists():
        if link.is_symlink():
            raise ValueError(f"{link} points to {os.readlink(link)}, which is missing; the run's "
                             "checkpoints are damaged: start a new run.")
        return None
    return link.resolve()


def read_state(run_dir):
    """The committed run state (`{}` before the first epoch)."""
    ckpt = committed_dir(run_dir)
    return read_json(ckpt / STATE) if ckpt is not None else {}


def commit_epoch(run_dir, name, files, state, carry=()):
    """Write an epoch's files and commit them with one atomic rename.

    `files` maps file names to `write(path)` callables; `carry` names files of
    the previous committed epoch to keep (hard links) when `files` has no new
    version; `state` becomes the epoch's `state.json`.
    """
    run_dir = pathlib.Path(run_dir)
    store = run_dir / STORE
    store.mkdir(parents=True, exist_ok=True)
    previous = committed_dir(run_dir)
    tmp = store / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    for file_name, write in files.items():
        _step(name, f"write {file_name}")
        write(str(tmp / file_name))
        _fsync(tmp / file_name)
    for file_name in carry:
        if file_name not in files and previous is not None and (previous / file_name).exists():
            _step(name, f"link {file_name}")
            os.link(previous / file_name, tmp / file_name)
    _step(name, f"write {STATE}")
    with open(tmp / STATE, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    _fsync(tmp)
    final = store / f"{name}-{uuid.uuid4().hex[:8]}"  # never the name of an earlier attempt
    _step(name, "rename the epoch directory")
    os.rename(tmp, final)
    link = run_dir / COMMITTED
    if link.is_dir() and not link.is_symlink():  # a run from before commit points
        os.rename(link, store / "legacy")
    new_link = run_dir / f".{COMMITTED}-{uuid.uuid4().hex[:8]}"
    os.symlink(f"{STORE}/{final.name}", new_link)
    _step(name, "commit")
    os.replace(new_link, link)  # the commit point
    _fsync(run_dir)
    _ensure_state_link(run_dir)
    clean_stale(run_dir)


def _ensure_state_link(run_dir):
    """`RUN/state.json`: a symlink to the committed epoch's state."""
    path = pathlib.Path(run_dir) / STATE
    target = f"{COMMITTED}/{STATE}"
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(f".{STATE}-{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    os.replace(tmp, path)


def clean_stale(run_dir):
    """Remove epoch directories no commit points to, and the temporaries an
    interrupted commit or save left (in the run and checkpoint directories)."""
    run_dir = pathlib.Path(run_dir)
    current = committed_dir(run_dir)
    store = run_dir / STORE
    removed = []
    if store.is_dir():
        for entry in store.iterdir():
            if entry.resolve() != current:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(entry)
    for entry in list(run_dir.glob(f".{COMMITTED}-*")) + list(run_dir.glob(f".{STATE}-*")) + \
            list(run_dir.glob(".tmp-*")):
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        removed.append(entry)
    return removed


def save_preset(model, dest):
    """`model.save_to_preset(dest)`, written next to `dest` first and moved
    into place: a failed or killed save leaves `dest` as it was."""
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{uuid.uuid4().hex[:8]}-{dest.name}"
    old = dest.parent / f".tmp-{uuid.uuid4().hex[:8]}-old-{dest.name}"
    try:
        model.save_to_preset(str(tmp))
        if dest.exists():
            os.rename(dest, old)
        os.rename(tmp, dest)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


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
    try:
        with h5py.File(path, "r", locking=False) as f:
            saved = len(f["optimizer/vars"]) if "optimizer/vars" in f else 0
    except OSError as e:
        raise ValueError(f"{path}: unreadable checkpoint ({str(e).splitlines()[0]}); restore it, or "
                         "start a new run.") from None
    if optimizer is not None and saved != len(optimizer.variables):
        raise ValueError(
            f"{path}: holds {saved} optimizer variables where the optimizer has "
            f"{len(optimizer.variables)}: not a training checkpoint of this model and optimizer."
        )
    model.load_weights(path)

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

A commit may also be taken inside an epoch (`state.json` then says how many
steps of the next epoch are done). Every commit holds `commit.json`: the
SHA-256 of each of its files and the name of the commit before it. The last
`keep` commits stay on disk (`clean_stale`); on resume, `recover` checks the
committed one and, when a file of it is damaged, goes back to the newest
intact one before it, naming the damaged file. Best weights unchanged since
the previous commit are hard links to that commit's file (one copy on disk,
shared by both commits).
"""

import errno
import hashlib
import json
import logging
import os
import pathlib
import shutil
import sys
import uuid

from keras_har.flags import KEEP_CHECKPOINTS

COMMITTED = "checkpoints"  # the symlink: the committed epoch
STORE = ".checkpoints"  # the epoch directories it points into
STATE = "state.json"
MANIFEST = "commit.json"  # {"previous": the commit before (its directory name), "sha256": {file: digest}}
PROGRESS = "progress.npz"  # metric accumulators and random generator states (`save_progress`)
KEEP = KEEP_CHECKPOINTS  # commits kept on disk: the committed one and the one before it

logger = logging.getLogger("keras_har")

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


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(commit_dir):
    """A commit's `commit.json` (`{}` when unreadable or absent)."""
    try:
        manifest = json.loads((commit_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def commit_epoch(run_dir, name, files, state, carry=(), keep=KEEP):
    """Write an epoch's files and commit them with one atomic rename.

    `files` maps file names to `write(path)` callables; `carry` names files of
    the previous committed epoch to keep (hard links) when `files` has no new
    version; `state` becomes the epoch's `state.json`. The last `keep` commits
    stay on disk.
    """
    run_dir = pathlib.Path(run_dir)
    store = run_dir / STORE
    store.mkdir(parents=True, exist_ok=True)
    previous = committed_dir(run_dir)
    previous_digests = _manifest(previous).get("sha256", {}) if previous is not None else {}
    tmp = store / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    digests = {}
    for file_name, write in files.items():
        _step(name, f"write {file_name}")
        write(str(tmp / file_name))
        _fsync(tmp / file_name)
        digests[file_name] = sha256(tmp / file_name)
    for file_name in carry:
        if file_name not in files and previous is not None and (previous / file_name).exists():
            _step(name, f"link {file_name}")
            os.link(previous / file_name, tmp / file_name)
            digests[file_name] = previous_digests.get(file_name) or sha256(tmp / file_name)
    _step(name, f"write {STATE}")
    with open(tmp / STATE, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    digests[STATE] = sha256(tmp / STATE)
    _step(name, f"write {MANIFEST}")
    with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
        json.dump({"previous": previous.name if previous is not None else None, "sha256": digests}, f,
                  indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    _fsync(tmp)
    final = store / f"{name}-{uuid.uuid4().hex[:8]}"  # never the name of an earlier attempt
    _step(name, "rename the epoch directory")
    os.rename(tmp, final)
    _point_to(run_dir, final, name)
    clean_stale(run_dir, keep)


def _point_to(run_dir, commit_dir, name="recover"):
    """Make `commit_dir` the committed one (one atomic rename of the symlink)."""
    store = run_dir / STORE
    link = run_dir / COMMITTED
    if link.is_dir() and not link.is_symlink():  # a plain directory (no commit point yet): kept as "legacy"
        os.rename(link, store / "legacy")
    new_link = run_dir / f".{COMMITTED}-{uuid.uuid4().hex[:8]}"
    os.symlink(f"{STORE}/{commit_dir.name}", new_link)
    _step(name, "commit")
    os.replace(new_link, link)  # the commit point
    _fsync(run_dir)
    _ensure_state_link(run_dir)


def kept_commits(run_dir, keep=KEEP):
    """The committed directory and up to `keep - 1` commits before it, newest first."""
    store = pathlib.Path(run_dir) / STORE
    current = committed_dir(run_dir)
    chain = []
    while current is not None and len(chain) < max(1, keep) and current not in chain:
        chain.append(current)
        previous = _manifest(current).get("previous")
        current = store / previous if isinstance(previous, str) and (store / previous).is_dir() else None
    return chain


def damage(commit_dir):
    """`(file, reason)` for the first damaged file of a commit, or None when it
    reads back as written (every file's SHA-256; a commit without
    `commit.json` is checked by reading its `state.json` and opening its
    `.h5` files)."""
    import h5py

    manifest = _manifest(commit_dir)
    digests = manifest.get("sha256")
    if (commit_dir / MANIFEST).exists() and not isinstance(digests, dict):
        return commit_dir / MANIFEST, "unreadable"
    if isinstance(digests, dict):
        for file_name, digest in sorted(digests.items(), key=lambda kv: kv[0] != STATE):
            path = commit_dir / file_name
            if not path.exists():
                return path, "missing"
            if sha256(path) != digest:
                return path, "its contents changed since it was written (SHA-256 mismatch)"
        return None
    try:
        read_json(commit_dir / STATE)
    except (OSError, ValueError) as e:
        return commit_dir / STATE, str(e).split(": ", 1)[-1].split(";")[0]
    for path in sorted(commit_dir.glob("*.h5")):
        try:
            h5py.File(path, "r", locking=False).close()
        except OSError as e:
            return path, f"unreadable ({str(e).splitlines()[0]})"
    return None


def describe_state(state):
    """Where a committed state stands, e.g. "phase 1, epoch 3, step 5"."""
    if not state:
        return "before the first commit"
    phase = state.get("phase", 1)
    done = int(state.get(f"phase{phase}_epochs_done", 0))
    step = int(state.get(f"phase{phase}_step", 0))
    return f"phase {phase}, epoch {done + 1}, step {step}" if step else f"phase {phase}, after epoch {done}"


def recover(run_dir):
    """Check the committed files; if one is damaged, commit the newest intact
    commit before it (one line names the damaged file and where the run goes
    back to). Raises ValueError naming the damaged file when no kept commit is
    intact. Returns the committed state."""
    run_dir = pathlib.Path(run_dir)
    chain = kept_commits(run_dir, keep=sys.maxsize)
    first = None
    for commit in chain:
        problem = damage(commit)
        if problem is None:
            if first is not None:
                _point_to(run_dir, commit)
                state = read_state(run_dir)
                logger.warning("%s: %s; going back to the commit before it: %s", first[0], first[1],
                               describe_state(state))
            return read_state(run_dir)
        first = first or problem
    if first is not None:
        raise ValueError(f"{first[0]}: {first[1]}, and no earlier intact commit is kept; restore it, "
                         "or start a new run.")
    return {}


def _ensure_state_link(run_dir):
    """`RUN/state.json`: a symlink to the committed epoch's state."""
    path = pathlib.Path(run_dir) / STATE
    target = f"{COMMITTED}/{STATE}"
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(f".{STATE}-{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    os.replace(tmp, path)


def clean_stale(run_dir, keep=KEEP):
    """Remove epoch directories outside the last `keep` commits, and the
    temporaries an interrupted commit or save left (in the run and
    checkpoint directories)."""
    run_dir = pathlib.Path(run_dir)
    kept = set(kept_commits(run_dir, keep))
    store = run_dir / STORE
    removed = []
    if store.is_dir():
        for entry in store.iterdir():
            if entry.resolve() not in kept:
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
    progress = path.with_name(PROGRESS)
    if progress.exists():
        load_progress(model, progress, metrics=False)


def _seed_generators(model):
    return [sg for layer in model._flatten_layers(include_self=True)
            for sg in getattr(layer, "_seed_generators", [])]


def save_progress(model, path):
    """What `save_weights` leaves out and a resume inside an epoch needs: the
    metric accumulators of the epoch so far (`model.metrics_variables`) and
    the state of every random seed generator of the model (dropout, drop
    path), as a plain `.npz`."""
    import numpy as np

    arrays = {f"metric{i}": keras_value(v) for i, v in enumerate(model.metrics_variables)}
    arrays.update({f"seed{i}": keras_value(sg.state) for i, sg in enumerate(_seed_generators(model))})
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def keras_value(variable):
    from keras import ops

    return ops.convert_to_numpy(variable.value)


def load_progress(model, path, metrics=True):
    """Restore what `save_progress` wrote (the metric accumulators only with
    `metrics`: call it after the epoch's `reset_metrics`). A file that does not
    match the model is an error naming it."""
    import numpy as np

    path = pathlib.Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable ({e}); restore it, or start a new run.") from None
    targets = [(f"seed{i}", sg.state) for i, sg in enumerate(_seed_generators(model))]
    if metrics:
        targets += [(f"metric{i}", v) for i, v in enumerate(model.metrics_variables)]
    expected = {k for k in arrays if k.startswith("seed") or (metrics and k.startswith("metric"))}
    if expected != {k for k, _ in targets}:
        raise ValueError(f"{path}: holds the progress of another model or metrics; start a new run.")
    for key, variable in targets:
        variable.assign(arrays[key].astype(variable.dtype))

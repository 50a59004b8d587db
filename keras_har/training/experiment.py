"""What both recipes share: dataset flags, the run directory, a training phase
that resumes where a killed run stopped, and the final evaluation.

A run directory holds:
  config.json            the resolved configuration (every flag)
  label_map.json         class name -> index
  history_phase{1,2}.csv one row per epoch (Keras CSVLogger)
  checkpoints/           last.weights.h5 (with the optimizer state), best_phase{k}.weights.h5
  state.json             phase, epochs done per phase, best validation top-1
  split.json             the selection protocol, the validation and the test video paths
  metrics.json           {"selection", "single_view", "tta", "official" (each top1, top5,
                         mean_class_accuracy, top1_ci95), "num_videos", "num_val_videos", "backend"}
  evaluation.json        per-class accuracy, confusion matrix, per-video predictions
  curves.png, confusion_matrix.png
"""

import argparse
import csv
import json
import logging
import os
import pathlib
import sys
import time

import keras

from keras_har import evaluation, plots
from keras_har.data.dataset_flags import DATASET_KEYS
from keras_har.training import checkpoints
from keras_har.training.callbacks import BadVideoReport, NaNGuard, RunCheckpoint, fit_segments
from keras_har.training.distribution import divisible_batches, divisible_steps, process_shard
from keras_har.training.run_lock import RunLock
from keras_har.utils import interrupts

logger = logging.getLogger("keras_har")


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked (taken, or not a run)."""


def run_main(main, argv=None):
    """Run a recipe's `main(argv)` and return its result; however it ends, the
    run directories are released, and an error ends the process with
    `exit_status`'s status."""
    try:
        return main(argv)
    except BaseException as e:  # noqa: B036 -- SystemExit passes through
        if isinstance(e, SystemExit):
            raise
        sys.exit(exit_status(e))
    finally:
        release_run_dirs()


def exit_status(error, prefix=""):
    """The exit status of a run that ended with `error`: SIGINT / SIGTERM
    (`interrupts.RunInterrupted`: the run committed and stopped) print one line
    (where it stopped, the --resume command) and give 130 / 143; anything else
    goes through `keras_har.errors.report` (a user error: one line naming the
    file and, after a failed write, where the run stands; exit status 2)."""
    from keras_har import errors

    if isinstance(error, interrupts.RunInterrupted):
        if sys.stdout.isatty():
            print(flush=True)  # end a progress bar's line
        print(describe_interrupt(error), file=sys.stderr, flush=True)
        return error.exit_code
    return errors.report(error, prefix=prefix, describe=describe_error)


def describe_interrupt(interrupt):
    """One line: which signal stopped the run, where it stands, how to go on."""
    run_dir = next(reversed(_RUN_LOCKS.values())).path.parent if _RUN_LOCKS else None
    name = interrupt.args[0]
    if run_dir is None:
        return f"{name}: stopped before the run directory was set up; nothing to resume."
    try:
        where = checkpoints.describe_state(checkpoints.read_state(run_dir))
    except (OSError, ValueError):
        where = "the last commit"
    script = sys.argv[0] if sys.argv else ""
    # recipes/*.py resume as themselves; `keras-har ...` and Python callers with the recipe's command.
    command = f"python {script}" if script.endswith(".py") else getattr(interrupt, "command", "keras-har train")
    return f"{name}: stopped at {where} (committed in {run_dir}/checkpoints); continue with: " \
           f"{command} --resume {run_dir}"


def release_run_dirs():
    """Unlock the run directories this process holds (its run is over)."""
    while _RUN_LOCKS:
        _RUN_LOCKS.popitem()[1].release()


def describe_error(error):
    """One line for a user error; for a full disk or a write that failed,
    where the run stands and how to go on."""
    import errno

    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    message = lines[0] if lines else type(error).__name__
    run_dir = next(reversed(_RUN_LOCKS.values())).path.parent if _RUN_LOCKS else None
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
        where = f"{error.filename}: " if error.filename else ""
        message = f"{where}{error.strerror or message}"
        if run_dir is not None:
            message += (f"; the last committed epoch in {run_dir}/checkpoints is intact: fix that and "
                        f"continue with --resume {run_dir}")
    elif isinstance(error, OSError) and "No space left" in message and run_dir is not None:
        message += (f"; the last committed epoch in {run_dir}/checkpoints is intact: free space and "
                    f"continue with --resume {run_dir}")
    return message


def setup_logging():
    """A training run's logging (`keras_har.utils.terminal.setup_logging`)."""
    from keras_har.utils.terminal import setup_logging

    setup_logging(training=True)


def prepare_splits(args, train_fraction=1.0):
    """`(train, validation, test)` for the flags (`--selection`, `--val-fraction`,
    then `--train-fraction` of what is left for training)."""
    from keras_har.data.dataset_flags import train_val_test

    if getattr(args, "selection", None) is None:
        args.selection = "validation"
    if getattr(args, "val_fraction", None) is None:
        args.val_fraction = 0.1
    train, val, test = train_val_test(args)
    if train_fraction < 1.0:
        from keras_har.data.subsets import stratified_subset

        train = stratified_subset(train, train_fraction, seed=args.seed)
    return train, val, test


def write_split(run_dir, args, train, val, test):
    """split.json: the protocol, and the validation and test video paths."""
    checkpoints.write_json(pathlib.Path(run_dir) / "split.json", {
        "selection": args.selection,
        "val_fraction": args.val_fraction if args.selection == "validation" else None,
        "seed": args.seed,
        "num_train_videos": len(train),
        "validation": val.paths,
        "test": test.paths,
    })


def resolve_defaults(args, real_defaults, synthetic_defaults):
    """Flags left at None take the reference protocol's values on a real
    dataset and the small built-in profile on the synthetic one; `--workers`
    and `--mixed-precision` the machine's (`machine_defaults`)."""
    from keras_har.training import machine_defaults

    table = synthetic_defaults if args.dataset == "synthetic" else real_defaults
    if getattr(args, "verbose", 1) is None:
        args.verbose = 1 if sys.stdout.isatty() else 2
    for key, value in {**real_defaults, **table}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return machine_defaults.apply(args)


RESUME_OVERRIDES = ("verbose", "checkpoint_every_steps", "keep_checkpoints")


def load_config_for_resume(parser, argv=None):
    """Parse flags; with --resume, the run's saved config.json wins."""
    args = parser.parse_args(argv)
    if args.resume:
        run_dir = pathlib.Path(args.resume)
        config_file = run_dir / "config.json"
        if not config_file.exists():
            parser.error(f"--resume {run_dir}: no config.json there; is it a run directory?")
        saved = json.loads(config_file.read_text())
        given = {key: getattr(args, key, None) for key in RESUME_OVERRIDES}
        args = argparse.Namespace(**saved)
        args.resume = str(run_dir)
        args.output_dir = str(run_dir)
        for key, value in given.items():  # flags that do not change the result
            if value is not None or key == "verbose":
                setattr(args, key, value)
    return args


_RUN_LOCKS = {}  # run directory -> its lock, held by this process until the run ends
_RUN_OPTIONS = {}  # run directory -> {"checkpoint_every_steps", "keep_checkpoints"} (fit_phase reads them)


def make_run_dir(args, recipe):
    """The run directory, locked for this process (a second run or resume on it
    fails at once naming the holder; a killed run's lock is taken over), with
    what an interrupted commit left removed."""
    if args.output_dir is None:
        args.output_dir = str(pathlib.Path("runs") / f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = pathlib.Path(args.output_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirectoryError(f"{run_dir}: cannot create the run directory ({e.strerror}); "
                                "choose another --output-dir.") from None
    key = run_dir.resolve()
    if key not in _RUN_LOCKS:  # a second run in this same process reuses its lock
        lock = RunLock(run_dir)
        stale = lock.acquire()
        _RUN_LOCKS[key] = lock
        if stale.get("pid") and stale.get("pid") != os.getpid():
            logger.info("%s: taking over the lock of process %s, which is gone", run_dir, stale["pid"])
    if getattr(args, "checkpoint_every_steps", None) is None:
        args.checkpoint_every_steps = 0
    if getattr(args, "keep_checkpoints", None) is None:
        args.keep_checkpoints = checkpoints.KEEP
    if args.checkpoint_every_steps < 0 or args.keep_checkpoints < 1:
        raise RunDirectoryError("--checkpoint-every-steps must be >= 0 and --keep-checkpoints >= 1.")
    _RUN_OPTIONS[key] = {"checkpoint_every_steps": args.checkpoint_every_steps,
                         "keep_checkpoints": args.keep_checkpoints}
    removed = checkpoints.clean_stale(run_dir, args.keep_checkpoints)
    if removed:
        logger.info("%s: removed %d files an interrupted save left (%s)", run_dir, len(removed),
                    ", ".join(p.name for p in removed[:3]))
    if not args.resume:
        if (run_dir / "state.json").exists():
            raise RunDirectoryError(
                f"{run_dir} already holds a run; pass --resume {run_dir} to continue it "
                "or choose another --output-dir."
            )
        checkpoints.write_json(run_dir / "config.json", {**vars(args), "backend": keras.backend.backend()})
    args.bad_video_log = str(run_dir / "bad_videos.txt")
    return run_dir


def load_state(run_dir):
    """The committed run state: phase, epochs done (and steps into the next),
    best validation values; a damaged commit falls back to the one before it."""
    return checkpoints.recover(run_dir)


def make_loader(args, dataset, model, training, **overrides):
    """The grain / tf.data batches for `dataset`, normalised for `model`."""
    from keras_har import data

    kwargs = dict(
        training=training,
        batch_size=args.batch_size,
        num_frames=args.num_frames,
        sampling_rate=args.sampling_rate,
        image_size=args.image_size,
        mean=model.image_mean,
        std=model.image_std,
        num_classes=getattr(model, "num_classes", None),
        loader=args.loader,
        workers=args.workers,
        seed=args.seed,
        on_error=args.on_bad_video,
        bad_video_log=getattr(args, "bad_video_log", None),
    )
    kwargs.update(overrides)
    shard_index, shard_count = process_shard()
    if training and shard_count > 1:
        # Multi-host: each process reads its own shard of every epoch, in
        # batches of global batch / processes (Keras assembles the global batch).
        kwargs.update(shard_index=shard_index, shard_count=shard_count,
                      batch_size=kwargs["batch_size"] // shard_count)
    return data.make_loader(dataset, **kwargs)


def warmup_cosine(peak_lr, total_steps, warmup_ratio):
    """Linear warmup from 0 over `warmup_ratio` of the steps, then cosine to 0."""
    warmup = int(round(total_steps * warmup_ratio))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak_lr,
        decay_steps=max(1, total_steps - warmup),
        warmup_target=peak_lr if warmup else None,
        warmup_steps=warmup,
    )


def _trim_history(path, rows):
    """Drop rows of epochs that were logged but not checkpointed before a kill."""
    if not path.exists():
        return
    with open(path) as f:
        lines = list(csv.reader(f))
    if len(lines) > rows + 1:
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(lines[: rows + 1])


def fit_phase(model, phase, epochs, train_loader, val_loader, run_dir, state, verbose=1):
    """`model.fit` for one phase, from the step the run directory says is next.

    `train_loader` / `val_loader` are `keras_har.data.VideoLoader`s. On resume
    the last weights, optimizer state and random generator states are
    restored, so the learning-rate schedule continues where it stopped, and
    the data order continues with the next batch's (inside an epoch: with the
    epoch's metric accumulators too). Commits: every epoch, every
    `--checkpoint-every-steps` steps, and on SIGINT / SIGTERM
    (`keras_har.utils.interrupts`), which then stop the run.
    """
    interrupts.check()
    run_dir = pathlib.Path(run_dir)
    done = int(state.get(f"phase{phase}_epochs_done", 0))
    step = int(state.get(f"phase{phase}_step", 0)) if state.get("phase") == phase else 0
    if done >= epochs:
        logger.info("phase %d: all %d epochs already done", phase, epochs)
        return state
    history_file = run_dir / f"history_phase{phase}.csv"
    if done > 0 or step > 0:
        checkpoints.load_checkpoint(model, run_dir / "checkpoints" / "last.weights.h5")
        _trim_history(history_file, done)
        logger.info("phase %d: resuming after epoch %d of %d%s", phase, done, epochs,
                    f", step {step} of {train_loader.steps_per_epoch}" if step else "")
    elif history_file.exists():
        history_file.unlink()
    train_loader.epochs = epochs
    options = _RUN_OPTIONS.get(run_dir.resolve(), {})
    checkpoint = RunCheckpoint(run_dir, phase, state=state, every_steps=options.get("checkpoint_every_steps"),
                               keep=options.get("keep_checkpoints") or checkpoints.KEEP,
                               steps_per_epoch=train_loader.steps_per_epoch, resume_step=step)
    # Their workers stop when the phase ends, however it ends; a stop request
    # is acted on at the next step boundary.
    with train_loader, val_loader, interrupts.deferred():
        for initial_epoch, first_step in fit_segments(done, step, epochs):
            train_data = train_loader.for_fit(initial_epoch=initial_epoch, initial_step=first_step)
            if first_step:
                _build_metrics(model, train_data)
            model.fit(
                train_data,
                validation_data=divisible_batches(val_loader),
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=train_loader.steps_per_epoch - first_step,
                validation_steps=divisible_steps(val_loader),
                shuffle=False,  # the loader shuffles, per epoch and seeded
                callbacks=[
                    NaNGuard(run_dir),
                    BadVideoReport(train_loader),
                    # The history row first, then the checkpoint: a run killed between
                    # the two has its extra row trimmed on resume (never a missing one).
                    keras.callbacks.CSVLogger(str(history_file), append=True),
                    checkpoint,
                ],
                verbose=verbose,
            )
    return checkpoint.state


def _build_metrics(model, dataset):
    """Build the compiled metrics before `fit` (the TensorFlow backend builds
    them at the first step), so that their accumulators can be restored at the
    start of a resumed epoch."""
    metrics = getattr(model, "_compile_metrics", None)
    if metrics is None or metrics.built:
        return
    iterator = iter(dataset)
    try:
        batch = next(iterator)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    model._symbolic_build(data_batch=batch)


def eval_batch_size(args, views_per_video):
    """Videos per evaluation batch: at most the clips per model call the
    reference protocol's 6-view TTA used (`batch_size` x 6), at least one video."""
    return max(1, (args.batch_size * 6) // views_per_video)


def final_evaluation(model, args, test_dataset, run_dir, tta_views, recipe_title, num_val_videos=None):
    """The test split, once: single view, the reference protocol's TTA and the
    official protocol (5 clips x 3 crops, softmax averaged) from one decode per
    video; each with a bootstrap 95% interval of top-1; metrics.json
    (`evaluation.test_metrics`), evaluation.json and the plots."""
    from keras_har.data.views import OFFICIAL_CLIPS, num_views

    run_dir = pathlib.Path(run_dir)
    paths = [p for p, _ in test_dataset.items]
    views = num_views("all", OFFICIAL_CLIPS)
    with make_loader(args, test_dataset, model, training=False, views="all", num_clips=OFFICIAL_CLIPS,
                     with_index=True, batch_size=eval_batch_size(args, views)) as loader:
        results = evaluation.evaluate_protocols(model, loader, paths=paths, tta_views=tta_views,
                                                num_clips=OFFICIAL_CLIPS)
    metrics = evaluation.test_metrics(
        results, tta_views=tta_views, official_clips=OFFICIAL_CLIPS,
        skipped_videos=skipped_by_split(args, test_dataset),
        selection=getattr(args, "selection", None) or "validation",
        num_val_videos=num_val_videos,
        clip={"num_frames": args.num_frames, "sampling_rate": args.sampling_rate, "image_size": args.image_size},
        dataset={k: getattr(args, k, None) for k in DATASET_KEYS if getattr(args, k, None) is not None},
        model="model",  # the run directory's model/ (relative: the run directory may move)
        backend=keras.backend.backend(),
    )
    if args.dataset == "synthetic":
        from keras_har.data import reversal_pair_accuracy

        metrics["synthetic"] = {
            name: reversal_pair_accuracy(results[name]["predictions"], results[name]["class_names"])
            for name in ("single_view", "tta", "official")
        }
    write_evaluation(run_dir, metrics, results, recipe_title)
    histories = [(f"phase {k}", plots.read_history(run_dir / f"history_phase{k}.csv")) for k in (1, 2)]
    plots.plot_curves(histories, run_dir / "curves.png", title=recipe_title)
    single = results["single_view"]
    logger.info(
        "test (selection on %s): single view top-1 %.4f [%.3f, %.3f] | %s-view TTA top-1 %.4f | "
        "official %dx3 top-1 %.4f (%d videos)", metrics["selection"], single["top1"],
        *single["top1_ci95"], tta_views, results["tta"]["top1"], OFFICIAL_CLIPS, results["official"]["top1"],
        single["num_videos"],
    )
    return metrics


def write_evaluation(out_dir, metrics, results, title):
    """metrics.json (`evaluation.test_metrics`' schema), evaluation.json (per
    protocol: per-class accuracy, confusion matrix, per-video predictions) and
    confusion_matrix.png of the best protocol evaluated (TTA, else official,
    else single view); the one writer of the recipes and `keras-har evaluate`."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoints.write_json(out_dir / "metrics.json", metrics)
    checkpoints.write_json(out_dir / "evaluation.json", results)
    best = next(results[k] for k in ("tta", "official", "single_view") if k in results)
    plots.plot_confusion_matrix(best["confusion_matrix"], best["class_names"], out_dir / "confusion_matrix.png",
                                title=f"{title}: top-1 {best['top1']:.3f}")


def skipped_by_split(args, test_dataset):
    """`{"train": [...], "test": [...]}`: the unreadable videos the run skipped, per split."""
    from keras_har.data.pipeline import BadVideoLog

    log = getattr(args, "bad_video_log", None)
    entries = BadVideoLog(log).entries() if log else []
    test_paths = set(test_dataset.paths)
    names = sorted({path for path, *_ in entries})
    return {"train": [p for p in names if p not in test_paths], "test": [p for p in names if p in test_paths]}


def set_precision_and_distribution(args, model_cls=None):
    """The seed, the dtype policy and (JAX) the multi-device distribution;
    model parallelism shards with `model_cls.get_layout_map`."""
    keras.utils.set_random_seed(args.seed)
    if args.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    if getattr(args, "model_parallel", 0):
        from keras_har.training.distribution import enable_model_parallel

        enable_model_parallel(args.model_parallel, model_cls.get_layout_map,
                              global_batch_size=getattr(args, "batch_size", None))
    elif getattr(args, "data_parallel", False):
        from keras_har.training.distribution import enable_data_parallel

        enable_data_parallel(global_batch_size=getattr(args, "batch_size", None))

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
from keras_har.data.dataset_flags import DATASETS, SELECTIONS, SYNTHETIC_PROFILES
from keras_har.training import checkpoints
from keras_har.training.callbacks import BadVideoReport, NaNGuard, RunCheckpoint
from keras_har.training.distribution import divisible_batches, divisible_steps, process_shard
from keras_har.training.run_lock import RunLock

logger = logging.getLogger("keras_har")


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked (taken, or not a run)."""


def run_main(main, argv=None):
    """Run a recipe's `main(argv)`: a user error (bad flags, dataset, preset,
    run directory) ends the process with one line on stderr and exit status 2
    instead of a traceback (KERAS_HAR_DEBUG=1 shows it)."""
    from keras_har.data.decoding import VideoReadError
    from keras_har.training.run_lock import RunDirectoryLocked

    try:
        return main(argv)
    except (ValueError, OSError, VideoReadError, RunDirectoryLocked) as e:
        if os.environ.get("KERAS_HAR_DEBUG", "") not in ("", "0"):
            raise
        print(f"error: {describe_error(e)}", file=sys.stderr)
        sys.exit(2)
    finally:
        release_run_dirs()


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
    """keras-har's own messages at INFO on stdout; other libraries' at WARNING."""
    from keras_har.utils.terminal import allow_any_file_name_on_output

    allow_any_file_name_on_output()
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    logger.setLevel(logging.INFO)


def add_data_args(parser):
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="synthetic (default; generated on first use), hmdb51, ucf101, "
                        "folder (root/<class>/*.avi or root/{train,val}/<class>/...) or csv.")
    g.add_argument("--synthetic", choices=SYNTHETIC_PROFILES, default="easy",
                   help="the synthetic profile: easy (6 classes, the quick start) or hard (10 "
                        "time-reversal classes, camera shake, clutter, noise, 10-20 frames).")
    g.add_argument("--data-root", help="videos root (HMDB51: the folder of class folders).")
    g.add_argument("--split-dir", help="HMDB51: testTrainMulti_7030_splits; UCF101: ucfTrainTestlist.")
    g.add_argument("--split", type=int, default=1, help="official split number (1-3).")
    g.add_argument("--train-list", help="csv: CSV of path,label for training.")
    g.add_argument("--val-list", help="csv: CSV of path,label for validation/test.")
    g.add_argument("--num-frames", type=int, default=None, help="frames per clip (16).")
    g.add_argument("--sampling-rate", type=int, default=None, help="frame stride (2).")
    g.add_argument("--image-size", type=int, default=None, help="crop size (224); 32 works.")
    g.add_argument("--loader", choices=("grain", "tf"), default="grain", help="input pipeline front-end.")
    g.add_argument("--workers", type=int, default=None,
                   help="loader worker processes (default: the cores available less 2 with an "
                        "accelerator, 2 without; keras_har.training.machine_defaults).")
    g.add_argument("--on-bad-video", choices=("skip", "raise"), default="skip",
                   help="skip (warn and count) or raise on an unreadable video.")
    return g


def add_selection_args(parser):
    g = parser.add_argument_group("checkpoint selection")
    g.add_argument("--selection", choices=SELECTIONS, default="validation",
                   help="validation: choose checkpoints (and watch training) on a held-out part "
                        "of the training split, grouped by source video; the test split is "
                        "evaluated once at the end. test: the seed's protocol, selection on the "
                        "test split itself (optimistic; for comparison).")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="with --selection validation: the fraction of every class's training "
                        "videos held out (whole source videos; seeded by --seed).")
    return g


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


def add_run_args(parser):
    g = parser.add_argument_group("run")
    g.add_argument("--output-dir", default=None, help="run directory (default runs/<recipe>-<time>).")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last epoch.")
    g.add_argument("--seed", type=int, default=0, help="initial weights, data order, augmentation.")
    g.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed_bfloat16 compute (float32 weights); default: on where the "
                        "accelerator computes in bfloat16, off on a CPU.")
    g.add_argument("--data-parallel", action="store_true",
                   help="JAX only: split each batch across all local devices "
                        "(keras.distribution.DataParallel).")
    g.add_argument("--model-parallel", type=int, default=0, metavar="N",
                   help="JAX only: shard attention/MLP kernels over groups of N devices "
                        "(keras.distribution.ModelParallel), data parallel across groups.")
    g.add_argument("--verbose", type=int, default=None, choices=(0, 1, 2),
                   help="Keras fit verbosity (default: 1, a progress bar, on a terminal; "
                        "2, one line per epoch, when the output goes to a file).")
    return g


def annotate_defaults(parser, real_defaults, synthetic_defaults):
    """Show every flag's default in `--help`: the seed's value (and the
    synthetic profile's where it differs) for the recipe's numbers."""
    for action in parser._actions:
        if action.help in (None, argparse.SUPPRESS):
            continue
        if action.dest in real_defaults:
            real, synthetic = real_defaults[action.dest], synthetic_defaults.get(action.dest)
            note = f"seed: {real}" + (f"; synthetic: {synthetic}" if synthetic != real else "")
            action.help = f"{action.help} [{note}]"
        elif action.default not in (None, False, argparse.SUPPRESS):
            action.help = f"{action.help} [default: %(default)s]"


def resolve_defaults(args, real_defaults, synthetic_defaults):
    """Flags left at None take the seed's values on a real dataset and the
    small built-in profile on the synthetic one; `--workers` and
    `--mixed-precision` the machine's (`machine_defaults`)."""
    from keras_har.training import machine_defaults

    table = synthetic_defaults if args.dataset == "synthetic" else real_defaults
    if getattr(args, "verbose", 1) is None:
        args.verbose = 1 if sys.stdout.isatty() else 2
    for key, value in {**real_defaults, **table}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return machine_defaults.apply(args)


def load_config_for_resume(parser, argv=None):
    """Parse flags; with --resume, the run's saved config.json wins."""
    args = parser.parse_args(argv)
    if args.resume:
        run_dir = pathlib.Path(args.resume)
        config_file = run_dir / "config.json"
        if not config_file.exists():
            parser.error(f"--resume {run_dir}: no config.json there; is it a run directory?")
        saved = json.loads(config_file.read_text())
        verbose = args.verbose
        args = argparse.Namespace(**saved)
        args.resume = str(run_dir)
        args.output_dir = str(run_dir)
        args.verbose = verbose
    return args


_RUN_LOCKS = {}  # run directory -> its lock, held by this process until the run ends


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
    removed = checkpoints.clean_stale(run_dir)
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
    """The committed run state: phase, epochs done, best validation values."""
    return checkpoints.read_state(run_dir)


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
        num_classes=model.num_classes,
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


def steps_per_epoch(num_items, batch_size):
    steps = num_items // batch_size
    if steps == 0:
        raise ValueError(f"{num_items} training videos are fewer than one batch of {batch_size}.")
    return steps


def warmup_cosine(peak_lr, total_steps, warmup_ratio):
    """Linear warmup from 0 over `warmup_ratio` of the steps, then cosine to 0."""
    warmup = int(round(total_steps * warmup_ratio))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak_lr,
        decay_steps=max(1, total_steps - warmup),
        warmup_target=peak_lr if warmup else None,
        warmup_steps=warmup,
    )


def accuracy_metrics(num_classes):
    return [
        keras.metrics.CategoricalAccuracy(name="top1"),
        keras.metrics.TopKCategoricalAccuracy(k=min(5, num_classes), name="top5"),
    ]


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
    """`model.fit` for one phase, from the epoch the run directory says is next.

    `train_loader` / `val_loader` are `keras_har.data.VideoLoader`s. On resume
    the last weights and optimizer state are restored, so the learning-rate
    schedule continues where it stopped, and the data order continues with the
    next epoch's.
    """
    run_dir = pathlib.Path(run_dir)
    done = int(state.get(f"phase{phase}_epochs_done", 0))
    if done >= epochs:
        logger.info("phase %d: all %d epochs already done", phase, epochs)
        return state
    history_file = run_dir / f"history_phase{phase}.csv"
    if done > 0:
        checkpoints.load_checkpoint(model, run_dir / "checkpoints" / "last.weights.h5")
        _trim_history(history_file, done)
        logger.info("phase %d: resuming after epoch %d of %d", phase, done, epochs)
    elif history_file.exists():
        history_file.unlink()
    train_loader.epochs = epochs
    checkpoint = RunCheckpoint(run_dir, phase, state=state)
    with train_loader, val_loader:  # their workers stop when the phase ends, however it ends
        model.fit(
            train_loader.for_fit(initial_epoch=done),
            validation_data=divisible_batches(val_loader),
            epochs=epochs,
            initial_epoch=done,
            steps_per_epoch=train_loader.steps_per_epoch,
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


def eval_batch_size(args, views_per_video):
    """Videos per evaluation batch: at most the clips per model call the
    seed's 6-view TTA used (`batch_size` x 6), at least one video."""
    return max(1, (args.batch_size * 6) // views_per_video)


def final_evaluation(model, args, test_dataset, run_dir, tta_views, recipe_title, num_val_videos=None):
    """The test split, once: single view, the seed's TTA and the official
    protocol (5 clips x 3 crops, softmax averaged) from one decode per video;
    each with a bootstrap 95% interval of top-1; plots and metrics.json."""
    from keras_har.data.views import OFFICIAL_CLIPS, num_views

    run_dir = pathlib.Path(run_dir)
    paths = [p for p, _ in test_dataset.items]
    views = num_views("all", OFFICIAL_CLIPS)
    with make_loader(args, test_dataset, model, training=False, views="all", num_clips=OFFICIAL_CLIPS,
                     with_index=True, batch_size=eval_batch_size(args, views)) as loader:
        results = evaluation.evaluate_protocols(model, loader, paths=paths, tta_views=tta_views,
                                                num_clips=OFFICIAL_CLIPS)
    single, tta = results["single_view"], results["tta"]
    metrics = {
        "selection": getattr(args, "selection", None) or "validation",
        "single_view": evaluation.summary(single),
        "tta": evaluation.summary(tta),
        "official": evaluation.summary(results["official"]),
        "tta_views": tta_views,
        "official_clips": OFFICIAL_CLIPS,
        "num_videos": single["num_videos"],
        "num_val_videos": num_val_videos,
        "skipped_videos": skipped_by_split(args, test_dataset),
        "backend": keras.backend.backend(),
    }
    if args.dataset == "synthetic":
        from keras_har.data import reversal_pair_accuracy

        metrics["synthetic"] = {
            name: reversal_pair_accuracy(results[name]["predictions"], results[name]["class_names"])
            for name in ("single_view", "tta", "official")
        }
    checkpoints.write_json(run_dir / "metrics.json", metrics)
    checkpoints.write_json(run_dir / "evaluation.json", results)
    best = tta if tta_views and tta_views > 1 else single
    plots.plot_confusion_matrix(
        best["confusion_matrix"], best["class_names"], run_dir / "confusion_matrix.png",
        title=f"{recipe_title}: top-1 {best['top1']:.3f}",
    )
    histories = [(f"phase {k}", plots.read_history(run_dir / f"history_phase{k}.csv")) for k in (1, 2)]
    plots.plot_curves(histories, run_dir / "curves.png", title=recipe_title)
    logger.info(
        "test (selection on %s): single view top-1 %.4f [%.3f, %.3f] | %s-view TTA top-1 %.4f | "
        "official %dx3 top-1 %.4f (%d videos)", metrics["selection"], single["top1"],
        *single["top1_ci95"], tta_views, tta["top1"], OFFICIAL_CLIPS, results["official"]["top1"],
        single["num_videos"],
    )
    return metrics


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

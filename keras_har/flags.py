"""The command-line flags, defined once for every `keras-har` command and recipe.

Each `add_*` function adds one group of flags to an `argparse` parser. The
training commands (`keras-har train`, `keras-har pretrain`, `recipes/*.py`)
and the model commands (`evaluate`, `predict`, `export`) share the same
definitions; a command that reads a run directory leaves the dataset, clip
and loader flags unset (None) so that the run's `config.json` fills them.

Imports no Keras: `keras-har --help` and loader workers stay light.
"""

import argparse

from keras_har.data.dataset_flags import DATASETS, SELECTIONS, SYNTHETIC_PROFILES

KEEP_CHECKPOINTS = 2  # --keep-checkpoints: the committed run state and the one before it


def count(minimum):
    """An argparse type: an integer >= `minimum`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def fraction(text):
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def add_dataset_args(parser, training):
    """--dataset and the flags that locate it. `training`: a training command
    (default `--dataset synthetic`); otherwise unset flags come from the run."""
    title = "data" if training else "dataset (default: the run's config.json)"
    g = parser.add_argument_group(title)
    g.add_argument("--dataset", choices=DATASETS, default="synthetic" if training else None,
                   help="synthetic (generated on first use), hmdb51, ucf101, folder "
                        "(root/<class>/*.avi or root/{train,val}/<class>/...) or csv")
    g.add_argument("--synthetic", choices=SYNTHETIC_PROFILES, default="easy" if training else None,
                   help="the synthetic profile: easy (6 classes, the quick start) or hard (10 "
                        "time-reversal classes, camera shake, clutter, noise, 10-20 frames)")
    g.add_argument("--data-root", metavar="DIR",
                   help="videos root (hmdb51: the folder of class folders; csv: relative paths "
                        "are taken from it)")
    g.add_argument("--split-dir", metavar="DIR",
                   help="hmdb51: testTrainMulti_7030_splits; ucf101: ucfTrainTestlist")
    g.add_argument("--split", type=count(1), metavar="N", default=1 if training else None,
                   help="official split number, 1-3")
    g.add_argument("--train-list", metavar="CSV", help="csv: CSV of path,label for training")
    g.add_argument("--val-list", metavar="CSV", help="csv: CSV of path,label of the test videos")
    return g


def add_clip_args(parser, training):
    """--num-frames, --sampling-rate, --image-size. Unset: the recipe's value
    (training) or the run's, else the model's."""
    g = parser.add_argument_group("clips")
    where = "the recipe's" if training else "the run's, else the model's"
    g.add_argument("--num-frames", type=count(1), metavar="N",
                   help=f"frames per clip (default: {where})")
    g.add_argument("--sampling-rate", type=count(1), metavar="N",
                   help=f"frame stride (default: {where})")
    g.add_argument("--image-size", type=count(1), metavar="N",
                   help=f"crop size (default: {where})")
    return g


def add_loader_args(parser, training):
    """--loader, --workers, --on-bad-video."""
    g = parser.add_argument_group("loader")
    g.add_argument("--loader", choices=("grain", "tf"), default="grain" if training else None,
                   help="grain or tf.data")
    g.add_argument("--workers", type=count(0), metavar="N", default=None,
                   help="loader worker processes (0 = inline; default: the run's; training: the "
                        "cores available less 2 with an accelerator, 2 without)")
    g.add_argument("--on-bad-video", choices=("skip", "raise"), default="skip" if training else None,
                   help="skip (warned, listed in metrics.json) or stop at an unreadable video")
    return g


def add_data_args(parser):
    """Every data flag of a training command: dataset, clips, loader."""
    add_dataset_args(parser, training=True)
    add_clip_args(parser, training=True)
    add_loader_args(parser, training=True)


def add_selection_args(parser):
    g = parser.add_argument_group("checkpoint selection")
    g.add_argument("--selection", choices=SELECTIONS, default="validation",
                   help="validation: choose checkpoints (and watch training) on a held-out part "
                        "of the training split, grouped by source video; the test split is "
                        "evaluated once at the end. test: the reference protocol's selection on "
                        "the test split itself (optimistic; for comparison)")
    g.add_argument("--val-fraction", type=fraction, default=0.1,
                   help="with --selection validation: the fraction of every class's training "
                        "videos held out (whole source videos; seeded by --seed)")
    return g


def add_run_args(parser):
    g = parser.add_argument_group("run")
    g.add_argument("--output-dir", metavar="DIR", default=None,
                   help="run directory (default runs/<recipe>-<time>)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last commit")
    g.add_argument("--seed", type=int, default=0, help="initial weights, data order, augmentation")
    g.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed_bfloat16 compute (float32 weights); default: on where the "
                        "accelerator computes in bfloat16, off on a CPU")
    g.add_argument("--data-parallel", action="store_true",
                   help="JAX only: split each batch across all local devices "
                        "(keras.distribution.DataParallel)")
    g.add_argument("--model-parallel", type=count(0), default=0, metavar="N",
                   help="JAX only: shard attention/MLP kernels over groups of N devices "
                        "(keras.distribution.ModelParallel), data parallel across groups")
    g.add_argument("--checkpoint-every-steps", type=count(0), default=None, metavar="N",
                   help="also commit a checkpoint every N training steps inside an epoch (default 0: "
                        "only after each epoch, and on SIGINT / SIGTERM); --resume continues from "
                        "that step")
    g.add_argument("--keep-checkpoints", type=count(1), default=None, metavar="K",
                   help=f"commits kept on disk (default {KEEP_CHECKPOINTS}); on --resume a damaged one "
                        "falls back to the one before it")
    g.add_argument("--verbose", type=int, default=None, choices=(0, 1, 2),
                   help="Keras fit verbosity (default: 1, a progress bar, on a terminal; "
                        "2, one line per epoch, when the output goes to a file)")
    return g


def add_model_args(parser):
    """--run-dir or --preset: the model a command reads."""
    g = parser.add_argument_group("model (one of)")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--run-dir", metavar="DIR",
                   help="a finished recipe run: its model/ and the settings of its config.json")
    m.add_argument("--preset", metavar="P",
                   help="a preset: keras-har's or a Hugging Face / timm directory, hf://org/name, "
                        "or a known name (e.g. videomae_base_kinetics)")
    return g


def annotate_defaults(parser, reference, synthetic):
    """Show every flag's default in `--help`: the reference protocol's value
    (and the synthetic profile's where it differs) for a recipe's numbers."""
    for action in parser._actions:
        if action.help in (None, argparse.SUPPRESS):
            continue
        if action.dest in reference:
            real, small = reference[action.dest], synthetic.get(action.dest)
            note = f"reference: {real}" + (f"; synthetic: {small}" if small != real else "")
            action.help = f"{action.help} [{note}]"
        elif action.default not in (None, False, argparse.SUPPRESS):
            action.help = f"{action.help} [default: %(default)s]"


# The training flags several recipes take, defined once: dest -> (flag, argparse keywords).
# Unset (None), each takes the recipe's default (`Recipe.reference_defaults` /
# `synthetic_defaults`).
TRAINING_FLAGS = {
    "batch_size": ("--batch-size", dict(type=count(1), metavar="N",
                                        help="clips per step (per optimizer update: x --grad-accum)")),
    "grad_accum": ("--grad-accum", dict(type=count(1), metavar="N", help="gradient accumulation steps")),
    "epochs": ("--epochs", dict(type=count(0), metavar="N", help="training epochs")),
    "weight_decay": ("--weight-decay", dict(type=float, metavar="W",
                                            help="AdamW weight decay (not on biases, norms, tokens)")),
    "warmup_ratio": ("--warmup-ratio", dict(type=fraction, metavar="F",
                                            help="fraction of the steps of linear warmup before the cosine decay")),
    "mixup_alpha": ("--mixup-alpha", dict(type=float, metavar="A", help="Mixup (0 disables)")),
    "label_smoothing": ("--label-smoothing", dict(type=fraction, metavar="F", help="cross-entropy label smoothing")),
    "clip_norm": ("--clip-norm", dict(type=float, metavar="N", help="global gradient norm clip (0 disables)")),
    "drop_path": ("--drop-path", dict(type=fraction, metavar="P", help="stochastic depth rate")),
    "tta_views": ("--tta-views", dict(type=int, choices=(1, 3, 6), help="test views (3 crops x flip)")),
}


def add_training_args(group, *names, **helps):
    """The `TRAINING_FLAGS` named, into `group`; `helps` (by dest) replaces a
    flag's help with the recipe's own wording."""
    for name in names:
        flag, kwargs = TRAINING_FLAGS[name]
        group.add_argument(flag, **{**kwargs, "help": helps.get(name, kwargs["help"])})

"""VideoMAE two-phase fine-tuning with 6-view test-time augmentation (the seed's phase 3).

    KERAS_BACKEND=jax python recipes/videomae_two_phase.py            # built-in synthetic data
    KERAS_BACKEND=jax python recipes/videomae_two_phase.py --dataset hmdb51 \
        --data-root data/hmdb51 --split-dir data/testTrainMulti_7030_splits

Phase 1: Mixup, soft-target cross-entropy, AdamW 5e-5, cosine with 10% warmup,
global clip norm 1.0, batch 8 x accumulation 4, 30 epochs, best checkpoint by
validation top-1. Phase 2 starts from that best checkpoint: no Mixup, label
smoothing 0.1, lr 1e-6, 10 epochs. Validation is a held-out 10% of the training
split (grouped by source video; --selection test for the seed's selection on
the test split). Then the test split, once: single view, 6-view TTA and the
official 5 clips x 3 crops.
Every number is a flag; flags left unset take the seed's values on a real
dataset, and a small profile on the synthetic default (tiny model from scratch,
under 5 minutes on 2 CPU cores).
"""

import argparse
import logging
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

if __name__ != "__mp_main__":  # loader workers import this script again under that name and need none of
    # the following: without them a worker starts in ~1 s with ~210 MB instead of 3 s with 700-900 MB (torch, TF)
    from keras_har.utils.import_order import load_backend

    load_backend()  # Keras and keras-hub (which imports TensorFlow) without TensorFlow's start-up lines
    import keras
    from keras_har.training import checkpoints, experiment
    from keras_har.training.optimizers import build_adamw

logger = logging.getLogger("keras_har")

# The seed's numbers (SEED.md), for real datasets.
SEED_DEFAULTS = dict(
    preset="videomae_base_kinetics",
    batch_size=8,
    grad_accum=4,
    epochs_phase1=30,
    epochs_phase2=10,
    lr_phase1=5e-5,
    lr_phase2=1e-6,
    weight_decay=0.05,
    warmup_ratio=0.1,
    mixup_alpha=0.8,
    cutmix_alpha=0.0,
    label_smoothing=0.1,
    clip_norm=1.0,
    layer_decay=1.0,
    drop_path=0.0,
    num_frames=16,
    sampling_rate=2,
    image_size=224,
    tta_views=6,
)
# The built-in synthetic check: a tiny VideoMAE from scratch.
SYNTHETIC_DEFAULTS = dict(
    SEED_DEFAULTS,
    preset="tiny",
    batch_size=16,
    grad_accum=1,
    epochs_phase1=12,
    epochs_phase2=3,
    lr_phase1=1e-3,
    lr_phase2=1e-4,
    num_frames=8,
    image_size=32,
)
TINY_CONFIG = dict(patch_size=8, tubelet_size=2, hidden_size=64, num_layers=4, num_heads=4,
                   intermediate_size=128)


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " (see the module docstring for details)",
    )
    experiment.add_data_args(parser)
    g = parser.add_argument_group("model and training (unset: the seed's value; the synthetic profile differs)")
    g.add_argument("--preset", help="HF directory, hf://org/name, a known name "
                   "(e.g. videomae_base_kinetics) or 'tiny' (a small VideoMAE from scratch).")
    g.add_argument("--batch-size", type=int, help="clips per step (per optimizer update: x --grad-accum).")
    g.add_argument("--grad-accum", type=int, help="gradient accumulation steps.")
    g.add_argument("--epochs-phase1", type=int, help="phase 1 epochs (Mixup, cosine schedule).")
    g.add_argument("--epochs-phase2", type=int, help="phase 2 epochs (from the best phase-1 checkpoint).")
    g.add_argument("--lr-phase1", type=float, help="phase 1 peak learning rate (AdamW).")
    g.add_argument("--lr-phase2", type=float, help="phase 2 peak learning rate.")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (not on biases, norms, tokens).")
    g.add_argument("--warmup-ratio", type=float, help="fraction of each phase's steps of linear warmup.")
    g.add_argument("--mixup-alpha", type=float, help="phase 1 Mixup (0 disables).")
    g.add_argument("--cutmix-alpha", type=float, help="phase 1 CutMix (0 disables; official: 1.0).")
    g.add_argument("--label-smoothing", type=float, help="phase 2 label smoothing.")
    g.add_argument("--clip-norm", type=float, help="global gradient norm clip (0 disables).")
    g.add_argument("--layer-decay", type=float, help="layer-wise lr decay (1 = off; official ViT-B: 0.75).")
    g.add_argument("--drop-path", type=float, help="stochastic depth (official ViT-B: 0.1).")
    g.add_argument("--tta-views", type=int, choices=(1, 3, 6), help="test views (3 crops x flip).")
    g.add_argument("--train-fraction", type=float, default=1.0,
                   help="train on this fraction of every class's videos (seeded by --seed; "
                        "taken after the validation set is set aside).")
    experiment.add_selection_args(parser)
    experiment.add_run_args(parser)
    experiment.annotate_defaults(parser, SEED_DEFAULTS, SYNTHETIC_DEFAULTS)
    return parser


def build_model(args, class_names):
    # Imported here, not at the top: the loader's worker processes re-import this
    # script, and keras_har.models pulls in keras-hub and TensorFlow (seconds each).
    from keras_har.models import VideoMAEBackbone, VideoMAEClassifier

    if args.preset == "tiny":
        backbone = VideoMAEBackbone(
            image_size=args.image_size, num_frames=args.num_frames,
            drop_path_rate=args.drop_path, **TINY_CONFIG,
        )
        return VideoMAEClassifier(backbone, labels=class_names)
    return VideoMAEClassifier.from_preset(
        args.preset, labels=class_names, drop_path_rate=args.drop_path,
        num_frames=args.num_frames, image_size=args.image_size,
    )


def compile_phase(model, args, phase, steps):
    epochs = args.epochs_phase1 if phase == 1 else args.epochs_phase2
    lr = args.lr_phase1 if phase == 1 else args.lr_phase2
    schedule = experiment.warmup_cosine(lr, steps * epochs, args.warmup_ratio)
    optimizer = build_adamw(
        model, schedule, weight_decay=args.weight_decay, clip_norm=args.clip_norm,
        grad_accum=args.grad_accum, layer_decay=args.layer_decay,
    )
    # Phase 1 targets are Mixup's soft labels: categorical cross-entropy on them
    # is the seed's -sum(targets * log_softmax(logits)).
    smoothing = args.label_smoothing if phase == 2 else 0.0
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=experiment.accuracy_metrics(model.num_classes))


def main(argv=None):
    experiment.setup_logging()
    parser = build_parser()
    args = experiment.load_config_for_resume(parser, argv)
    experiment.resolve_defaults(args, SEED_DEFAULTS, SYNTHETIC_DEFAULTS)
    from keras_har.models import VideoMAEClassifier

    experiment.set_precision_and_distribution(args, VideoMAEClassifier)
    train_set, val_set, test_set = experiment.prepare_splits(args, getattr(args, "train_fraction", 1.0))
    run_dir = experiment.make_run_dir(args, "videomae_two_phase")
    train_set.save_label_map(run_dir / "label_map.json")
    experiment.write_split(run_dir, args, train_set, val_set, test_set)
    logger.info("run directory %s | backend %s | %d train / %d validation (selection on %s) / %d test "
                "videos, %d classes", run_dir, keras.backend.backend(), len(train_set), len(val_set),
                args.selection, len(test_set), len(train_set.class_names))

    model = build_model(args, train_set.class_names)
    state = experiment.load_state(run_dir)
    steps = experiment.steps_per_epoch(len(train_set), args.batch_size)
    val_loader = experiment.make_loader(args, val_set, model, training=False, views="single",
                                         with_weights=True)

    # Phase 1: Mixup, soft targets, cosine schedule.
    compile_phase(model, args, 1, steps)
    train_loader = experiment.make_loader(
        args, train_set, model, training=True,
        mixup_alpha=args.mixup_alpha, cutmix_alpha=args.cutmix_alpha,
    )
    state = experiment.fit_phase(model, 1, args.epochs_phase1, train_loader, val_loader,
                                 run_dir, state, args.verbose)

    # Phase 2 starts from phase 1's best weights (unless resuming inside phase 2).
    ckpt = pathlib.Path(run_dir) / "checkpoints"
    if args.epochs_phase2 > 0:
        if int(state.get("phase2_epochs_done", 0)) == 0 and (ckpt / "best_phase1.weights.h5").exists():
            model.load_weights(ckpt / "best_phase1.weights.h5")
            logger.info("phase 2: starting from the best phase-1 checkpoint (val top-1 %.4f)",
                        state.get("phase1_best", float("nan")))
        compile_phase(model, args, 2, steps)  # a fresh optimizer and schedule
        train_loader = experiment.make_loader(args, train_set, model, training=True)
        state = experiment.fit_phase(model, 2, args.epochs_phase2, train_loader, val_loader,
                                     run_dir, state, args.verbose)
    # Evaluate the best weights of the last phase that ran.
    last_phase = 2 if args.epochs_phase2 > 0 else 1
    best = ckpt / f"best_phase{last_phase}.weights.h5"
    if best.exists():
        model.load_weights(best)
    metrics = experiment.final_evaluation(model, args, test_set, run_dir, args.tta_views,
                                          "VideoMAE two-phase", num_val_videos=len(val_set))
    checkpoints.save_preset(model, run_dir / "model")
    print(f"\nRun directory: {run_dir}\nsingle view top-1 {metrics['single_view']['top1']:.4f} | "
          f"{args.tta_views}-view TTA top-1 {metrics['tta']['top1']:.4f} | official top-1 "
          f"{metrics['official']['top1']:.4f} on {metrics['num_videos']} test videos "
          f"(checkpoints chosen on {metrics['num_val_videos']} {args.selection} videos)")
    return metrics


if __name__ == "__main__":
    experiment.run_main(main)

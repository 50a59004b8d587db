"""The seed's baseline: ImageNet ViT-Small per frame, mean-pooled over frames.

    KERAS_BACKEND=jax python recipes/baseline_vit_small.py             # built-in synthetic data
    KERAS_BACKEND=jax python recipes/baseline_vit_small.py --dataset hmdb51 \
        --data-root data/hmdb51 --split-dir data/testTrainMulti_7030_splits

As the seed ran it: 4 epochs, batch 16 x accumulation 4, AdamW with lr 1e-4 for
the backbone and 5e-4 for the head, weight decay 0.05, constant lr, plain
cross-entropy, crops and flips drawn independently per frame, one test view.
The steps of the seed's improvement path are flags: --consistent-crops,
--epochs 20, --lr-schedule cosine, --mixup-alpha 0.8, --tta-views 6.
"""

import argparse
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

if __name__ != "__mp_main__":  # loader workers import this script again under that name and need none of
    # the following: without them a worker starts in ~1 s with ~210 MB instead of 3 s with 700-900 MB (torch, TF)
    from keras_har.utils.import_order import load_backend

    load_backend()  # Keras and keras-hub (which imports TensorFlow) without TensorFlow's start-up lines
    import keras
    from keras_har.training import checkpoints, experiment
    from keras_har.training.optimizers import build_adamw, head_multipliers

logger = logging.getLogger("keras_har")

SEED_DEFAULTS = dict(
    preset="hf://timm/vit_small_patch16_224.augreg_in21k_ft_in1k",
    batch_size=16,
    grad_accum=4,
    epochs=4,
    lr_backbone=1e-4,
    lr_head=5e-4,
    weight_decay=0.05,
    lr_schedule="constant",
    warmup_ratio=0.1,
    mixup_alpha=0.0,
    label_smoothing=0.0,
    num_frames=16,
    sampling_rate=2,
    image_size=224,
    tta_views=1,
)
SYNTHETIC_DEFAULTS = dict(
    SEED_DEFAULTS,
    preset="tiny",
    batch_size=16,
    grad_accum=1,
    epochs=12,
    lr_backbone=1e-3,
    lr_head=5e-3,
    num_frames=8,
    image_size=32,
)
TINY_VIT = dict(patch_size=8, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128)


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
    )
    experiment.add_data_args(parser)
    g = parser.add_argument_group("model and training (unset: the seed's value; the synthetic profile differs)")
    g.add_argument("--preset", help="timm directory or state-dict file, hf://timm/..., a keras-har "
                   "preset, or 'tiny' (a small ViT from scratch).")
    g.add_argument("--batch-size", type=int, help="clips per step (per optimizer update: x --grad-accum).")
    g.add_argument("--grad-accum", type=int, help="gradient accumulation steps.")
    g.add_argument("--epochs", type=int, help="training epochs (the improvement path: 20).")
    g.add_argument("--lr-backbone", type=float, help="learning rate of the ViT backbone.")
    g.add_argument("--lr-head", type=float, help="learning rate of the new head.")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (not on biases, norms, tokens).")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"), help="constant, or cosine with linear warmup.")
    g.add_argument("--warmup-ratio", type=float, help="with --lr-schedule cosine.")
    g.add_argument("--mixup-alpha", type=float, help="Mixup (0 disables; the improvement path: 0.8).")
    g.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing.")
    g.add_argument("--consistent-crops", action="store_true",
                   help="draw the crop and flip once per clip (the seed's first fix).")
    g.add_argument("--tta-views", type=int, choices=(1, 3, 6), help="test views (3 crops x flip; the improvement path: 6).")
    experiment.add_selection_args(parser)
    experiment.add_run_args(parser)
    experiment.annotate_defaults(parser, SEED_DEFAULTS, SYNTHETIC_DEFAULTS)
    return parser


def build_model(args, class_names):
    # Imported here, not at the top: the loader's worker processes re-import this
    # script, and keras_har.models pulls in keras-hub and TensorFlow (seconds each).
    from keras_har.models import MeanPooledViTClassifier

    if args.preset == "tiny":
        return MeanPooledViTClassifier.from_scratch(
            image_size=args.image_size, labels=class_names, **TINY_VIT
        )
    return MeanPooledViTClassifier.from_preset(
        args.preset, labels=class_names, image_size=args.image_size
    )


def main(argv=None):
    experiment.setup_logging()
    parser = build_parser()
    args = experiment.load_config_for_resume(parser, argv)
    experiment.resolve_defaults(args, SEED_DEFAULTS, SYNTHETIC_DEFAULTS)
    from keras_har.models import MeanPooledViTClassifier

    experiment.set_precision_and_distribution(args, MeanPooledViTClassifier)
    train_set, val_set, test_set = experiment.prepare_splits(args)
    run_dir = experiment.make_run_dir(args, "baseline_vit_small")
    train_set.save_label_map(run_dir / "label_map.json")
    experiment.write_split(run_dir, args, train_set, val_set, test_set)
    logger.info("run directory %s | backend %s | %d train / %d validation (%s) / %d test videos, "
                "%d classes", run_dir, keras.backend.backend(), len(train_set), len(val_set),
                args.selection, len(test_set), len(train_set.class_names))

    model = build_model(args, train_set.class_names)
    steps = experiment.steps_per_epoch(len(train_set), args.batch_size)
    if args.lr_schedule == "cosine":
        lr = experiment.warmup_cosine(1.0, steps * args.epochs, args.warmup_ratio)
    else:
        lr = 1.0  # the per-group learning rates below scale this
    optimizer = build_adamw(
        model, lr, weight_decay=args.weight_decay, grad_accum=args.grad_accum,
        lr_multipliers=head_multipliers(model, backbone_lr=args.lr_backbone, head_lr=args.lr_head),
    )
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=args.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=experiment.accuracy_metrics(model.num_classes))

    state = experiment.load_state(run_dir)
    train_loader = experiment.make_loader(
        args, train_set, model, training=True, consistent=args.consistent_crops,
        mixup_alpha=args.mixup_alpha,
    )
    val_loader = experiment.make_loader(args, val_set, model, training=False, views="single",
                                         with_weights=True)
    experiment.fit_phase(model, 1, args.epochs, train_loader, val_loader, run_dir, state, args.verbose)
    # The seed's baseline keeps its last weights (no checkpoint selection); the
    # validation set only reports progress.
    metrics = experiment.final_evaluation(model, args, test_set, run_dir, args.tta_views,
                                          "mean-pooled ViT baseline", num_val_videos=len(val_set))
    checkpoints.save_preset(model, run_dir / "model")
    print(f"\nRun directory: {run_dir}\nsingle view top-1 {metrics['single_view']['top1']:.4f} "
          f"on {metrics['num_videos']} videos")
    return metrics


if __name__ == "__main__":
    experiment.run_main(main)

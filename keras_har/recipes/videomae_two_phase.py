"""VideoMAE two-phase fine-tuning with 6-view test-time augmentation.

    keras-har train videomae-two-phase                 # built-in synthetic data
    keras-har train videomae-two-phase --dataset hmdb51 \
        --data-root data/hmdb51 --split-dir data/testTrainMulti_7030_splits

Phase 1: Mixup, soft-target cross-entropy, AdamW 5e-5, cosine with 10% warmup,
global clip norm 1.0, batch 8 x accumulation 4, 30 epochs, best checkpoint by
validation top-1. Phase 2 starts from that best checkpoint: no Mixup, label
smoothing 0.1, lr 1e-6, 10 epochs. Validation is a held-out 10% of the training
split (grouped by source video; --selection test selects on the test split, as
the reference protocol did). Then the test split, once: single view, 6-view
TTA and the official 5 clips x 3 crops. Every number is a flag; flags left
unset take the reference protocol's values on a real dataset (docs/recipe.md),
and a small profile on the synthetic default (a tiny model from scratch, under
5 minutes on 2 CPU cores).
"""

import logging

from keras_har import flags
from keras_har.training.recipe import ClassifierRecipe, cross_entropy

logger = logging.getLogger("keras_har")

# The reference protocol's values (docs/recipe.md), for real datasets.
REFERENCE_DEFAULTS = dict(
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
    REFERENCE_DEFAULTS,
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

class VideoMAETwoPhase(ClassifierRecipe):
    name = "videomae-two-phase"
    run_name = "videomae_two_phase"
    title = "VideoMAE two-phase"
    description = __doc__.split("\n\n")[0]
    reference_defaults = REFERENCE_DEFAULTS
    synthetic_defaults = SYNTHETIC_DEFAULTS

    def add_arguments(self, g):
        g.add_argument("--preset", help="HF directory, hf://org/name, a known name "
                       "(e.g. videomae_base_kinetics) or an architecture name such as 'tiny' "
                       "(a new VideoMAE of that size, from scratch).")
        flags.add_training_args(g, "batch_size", "grad_accum")
        g.add_argument("--epochs-phase1", type=flags.count(0), metavar="N",
                       help="phase 1 epochs (Mixup, cosine schedule).")
        g.add_argument("--epochs-phase2", type=flags.count(0), metavar="N",
                       help="phase 2 epochs (from the best phase-1 checkpoint).")
        g.add_argument("--lr-phase1", type=float, metavar="LR", help="phase 1 peak learning rate (AdamW).")
        g.add_argument("--lr-phase2", type=float, metavar="LR", help="phase 2 peak learning rate.")
        flags.add_training_args(g, "weight_decay", "warmup_ratio", "mixup_alpha", mixup_alpha="phase 1 Mixup (0 disables)")
        g.add_argument("--cutmix-alpha", type=float, metavar="A", help="phase 1 CutMix (0 disables; official: 1.0).")
        flags.add_training_args(g, "label_smoothing", "clip_norm", label_smoothing="phase 2 label smoothing")
        g.add_argument("--layer-decay", type=float, metavar="D",
                       help="layer-wise lr decay (1 = off; official ViT-B: 0.75).")
        flags.add_training_args(g, "drop_path", "tta_views", drop_path="stochastic depth (official ViT-B: 0.1)")
        g.add_argument("--train-fraction", type=float, default=1.0,
                       help="train on this fraction of every class's videos (seeded by --seed; "
                            "taken after the validation set is set aside).")

    def model_class(self):
        from keras_har.models import VideoMAEClassifier

        return VideoMAEClassifier

    def build_model(self, args, class_names):
        from keras_har.models import VIDEOMAE_ARCHITECTURES, VideoMAEClassifier

        size = dict(num_frames=args.num_frames, image_size=args.image_size, drop_path_rate=args.drop_path)
        if args.preset in VIDEOMAE_ARCHITECTURES:
            return VideoMAEClassifier.from_architecture(args.preset, labels=class_names, **size)
        return VideoMAEClassifier.from_preset(args.preset, labels=class_names, **size)

    def compile_phase(self, model, args, phase, steps):
        """AdamW on a warmup + cosine schedule of `steps` per epoch; phase 1's
        targets are Mixup's soft labels, phase 2 smooths one-hot ones."""
        from keras_har.training import experiment
        from keras_har.training.optimizers import build_adamw

        epochs = args.epochs_phase1 if phase == 1 else args.epochs_phase2
        lr = args.lr_phase1 if phase == 1 else args.lr_phase2
        schedule = experiment.warmup_cosine(lr, steps * epochs, args.warmup_ratio)
        optimizer = build_adamw(
            model, schedule, weight_decay=args.weight_decay, clip_norm=args.clip_norm,
            grad_accum=args.grad_accum, layer_decay=args.layer_decay,
        )
        smoothing = args.label_smoothing if phase == 2 else 0.0
        model.compile(optimizer=optimizer, loss=cross_entropy(smoothing))  # top-1 / top-5 metrics

    def train(self, run):
        args, model = run.args, run.model
        val_loader = self.validation_loader(run)
        # Phase 1: Mixup, soft targets, cosine schedule.
        train_loader = run.loader(run.train_set, training=True, mixup_alpha=args.mixup_alpha,
                                  cutmix_alpha=args.cutmix_alpha)
        self.compile_phase(model, args, 1, train_loader.steps_per_epoch)
        run.fit(1, args.epochs_phase1, train_loader, val_loader)
        # Phase 2 starts from phase 1's best weights (unless resuming inside phase 2).
        if args.epochs_phase2 > 0:
            best = run.checkpoint_dir / "best_phase1.weights.h5"
            if int(run.state.get("phase2_epochs_done", 0)) == 0 and best.exists():
                model.load_weights(best)
                logger.info("phase 2: starting from the best phase-1 checkpoint (val top-1 %.4f)",
                            run.state.get("phase1_best", float("nan")))
            train_loader = run.loader(run.train_set, training=True)
            self.compile_phase(model, args, 2, train_loader.steps_per_epoch)  # a fresh optimizer
            run.fit(2, args.epochs_phase2, train_loader, val_loader)
        # Evaluate the best weights of the last phase that ran.
        best = run.checkpoint_dir / f"best_phase{2 if args.epochs_phase2 > 0 else 1}.weights.h5"
        if best.exists():
            model.load_weights(best)


RECIPE = VideoMAETwoPhase()
main = RECIPE.main

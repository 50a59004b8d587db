"""The reference protocol's baseline: ImageNet ViT-Small per frame, mean-pooled over frames.

    keras-har train baseline-vit-small                 # built-in synthetic data
    keras-har train baseline-vit-small --dataset hmdb51 \
        --data-root data/hmdb51 --split-dir data/testTrainMulti_7030_splits

As the reference protocol ran it: 4 epochs, batch 16 x accumulation 4, AdamW
with lr 1e-4 for the backbone and 5e-4 for the head, weight decay 0.05,
constant lr, plain cross-entropy, crops and flips drawn independently per
frame, one test view. The steps of its improvement path (docs/recipe.md) are
flags: --consistent-crops, --epochs 20, --lr-schedule cosine, --mixup-alpha
0.8, --tta-views 6.
"""

from keras_har import flags
from keras_har.training.recipe import ClassifierRecipe, cross_entropy

REFERENCE_DEFAULTS = dict(
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
    REFERENCE_DEFAULTS,
    preset="tiny",
    batch_size=16,
    grad_accum=1,
    epochs=12,
    lr_backbone=1e-3,
    lr_head=5e-3,
    num_frames=8,
    image_size=32,
)


class BaselineViTSmall(ClassifierRecipe):
    name = "baseline-vit-small"
    run_name = "baseline_vit_small"
    title = "mean-pooled ViT baseline"
    description = __doc__.split("\n\n")[0]
    reference_defaults = REFERENCE_DEFAULTS
    synthetic_defaults = SYNTHETIC_DEFAULTS

    def add_arguments(self, g):
        g.add_argument("--preset", help="timm directory or state-dict file, hf://timm/..., a keras-har "
                       "preset, or an architecture name such as 'tiny' (a new ViT of that size).")
        flags.add_training_args(g, "batch_size", "grad_accum", "epochs",
                                epochs="training epochs (the improvement path: 20)")
        g.add_argument("--lr-backbone", type=float, metavar="LR", help="learning rate of the ViT backbone.")
        g.add_argument("--lr-head", type=float, metavar="LR", help="learning rate of the new head.")
        flags.add_training_args(g, "weight_decay")
        g.add_argument("--lr-schedule", choices=("constant", "cosine"), help="constant, or cosine with linear warmup.")
        flags.add_training_args(g, "warmup_ratio", "mixup_alpha", "label_smoothing",
                                warmup_ratio="with --lr-schedule cosine: the fraction of linear warmup",
                                mixup_alpha="Mixup (0 disables; the improvement path: 0.8)")
        g.add_argument("--consistent-crops", action="store_true",
                       help="draw the crop and flip once per clip (the improvement path's first step).")
        flags.add_training_args(g, "tta_views", tta_views="test views (3 crops x flip; the improvement path: 6)")

    def model_class(self):
        from keras_har.models import MeanPooledViTClassifier

        return MeanPooledViTClassifier

    def build_model(self, args, class_names):
        from keras_har.models import MEAN_POOLED_VIT_ARCHITECTURES, MeanPooledViTClassifier

        if args.preset in MEAN_POOLED_VIT_ARCHITECTURES:
            return MeanPooledViTClassifier.from_architecture(args.preset, image_size=args.image_size,
                                                             labels=class_names)
        return MeanPooledViTClassifier.from_preset(args.preset, labels=class_names, image_size=args.image_size)

    def train(self, run):
        from keras_har.training import experiment
        from keras_har.training.optimizers import build_adamw, head_multipliers

        args, model = run.args, run.model
        train_loader = run.loader(run.train_set, training=True, consistent=args.consistent_crops,
                                  mixup_alpha=args.mixup_alpha)
        steps = train_loader.steps_per_epoch
        if args.lr_schedule == "cosine":
            lr = experiment.warmup_cosine(1.0, steps * args.epochs, args.warmup_ratio)
        else:
            lr = 1.0  # the per-group learning rates below scale this
        optimizer = build_adamw(
            model, lr, weight_decay=args.weight_decay, grad_accum=args.grad_accum,
            lr_multipliers=head_multipliers(model, backbone_lr=args.lr_backbone, head_lr=args.lr_head),
        )
        model.compile(optimizer=optimizer, loss=cross_entropy(args.label_smoothing))  # top-1 / top-5 metrics
        # The baseline keeps its last weights (no checkpoint selection); the
        # validation set only reports progress.
        run.fit(1, args.epochs, train_loader, self.validation_loader(run))

    def result_lines(self, run, metrics):
        return [f"Run directory: {run.run_dir}",
                f"single view top-1 {metrics['single_view']['top1']:.4f} on {metrics['num_videos']} videos"]


RECIPE = BaselineViTSmall()
main = RECIPE.main

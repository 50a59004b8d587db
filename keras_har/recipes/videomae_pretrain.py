"""VideoMAE masked-autoencoder pre-training on unlabelled video (VideoMAE's own method).

    keras-har pretrain                                   # built-in synthetic videos
    keras-har pretrain --dataset folder --data-root my_videos/
    keras-har pretrain --dataset hmdb51 \
        --data-root data/hmdb51 --split-dir data/testTrainMulti_7030_splits
    keras-har pretrain --preset hf://MCG-NJU/videomae-base ...

Unlabelled sources: --dataset folder (every video under --data-root, any
layout), csv (--train-list: first column a path), or the train split of
hmdb51 / ucf101 / synthetic (labels ignored). Held-out videos (the test split,
--val-list, or --holdout videos set aside) give the validation loss and
reconstructions.png. The defaults on a real dataset are the official
pre-training scripts': AdamW betas 0.9/0.95, weight decay 0.05 (not on biases,
norms or the mask token), lr 1.5e-4 x total batch / 256, 40 warm-up epochs
then cosine, 800 epochs, tube masking 0.9, decoder depth 4 (width 384),
normalised-pixel loss, 16 frames, sampling rate 2 (4 on HMDB51/UCF101),
multi-scale crop (no flip, as the official code; --flip-prob to add one).
With no dataset: a tiny VideoMAE on the built-in synthetic videos, a few
minutes on 2 CPU cores. The run directory holds config.json,
history_phase1.csv, checkpoints/ (atomic; --resume continues), curves.png,
reconstructions.png, metrics.json and model/ (a preset:
`VideoMAEClassifier.from_preset(run/model, num_classes=K)` fine-tunes it,
e.g. `keras-har train videomae-two-phase --preset run/model`).
"""

import logging

import numpy as np

from keras_har import flags
from keras_har.training.recipe import Recipe, Run

logger = logging.getLogger("keras_har")

# The official VideoMAE pre-training scripts (ViT-B), for real datasets.
REFERENCE_DEFAULTS = dict(
    preset="base",
    batch_size=8,
    grad_accum=1,
    epochs=800,
    warmup_epochs=40,
    base_lr=1.5e-4,
    weight_decay=0.05,
    beta_1=0.9,
    beta_2=0.95,
    clip_norm=0.0,
    mask_ratio=0.9,
    masking="tube",
    decoder_depth=4,
    decoder_width=384,
    decoder_heads=6,
    decoder_mlp=1536,
    drop_path=0.0,
    flip_prob=0.0,
    num_frames=16,
    sampling_rate=2,
    image_size=224,
    holdout=8,
    reconstructions=4,
)
# The built-in synthetic check: a tiny VideoMAE from scratch, a few minutes on 2 CPU cores.
SYNTHETIC_DEFAULTS = dict(
    REFERENCE_DEFAULTS,
    preset="tiny",
    batch_size=16,
    epochs=8,
    warmup_epochs=1,
    base_lr=2.4e-2,
    mask_ratio=0.75,
    decoder_depth=1,
    decoder_width=32,
    decoder_heads=2,
    decoder_mlp=64,
    num_frames=8,
    image_size=32,
)
# UCF101 / HMDB51: the official scripts sample every 4th frame.
SPARSE_SAMPLING = ("hmdb51", "ucf101")


class VideoMAEPretrain(Recipe):
    name = "videomae-pretrain"
    run_name = "videomae_pretrain"
    title = "VideoMAE pre-training"
    description = __doc__.split("\n\n")[0]
    reference_defaults = REFERENCE_DEFAULTS
    synthetic_defaults = SYNTHETIC_DEFAULTS
    option_title = "model and training (unset: the official value; the synthetic profile differs)"
    command = "keras-har pretrain"

    def add_arguments(self, g):
        g.add_argument("--preset", help="an architecture name (tiny, small, base, ...: a new VideoMAE), or a checkpoint to continue from: "
                       "a transformers VideoMAEForPreTraining directory, hf://org/name, a known name or a "
                       "keras-har preset directory.")
        flags.add_training_args(g, "batch_size", "grad_accum", "epochs", epochs="pre-training epochs")
        g.add_argument("--warmup-epochs", type=int, help="epochs of linear warm-up before the cosine decay.")
        g.add_argument("--base-lr", type=float, help="learning rate per 256 clips: lr = base-lr x total batch / 256.")
        flags.add_training_args(g, "weight_decay",
                                weight_decay="AdamW weight decay (not on biases, norms, the mask token)")
        g.add_argument("--beta-1", type=float, help="AdamW beta 1.")
        g.add_argument("--beta-2", type=float, help="AdamW beta 2.")
        flags.add_training_args(g, "clip_norm", clip_norm="global gradient norm clip (0 disables; official: none)")
        g.add_argument("--mask-ratio", type=float, help="fraction of tokens masked (official UCF101: 0.75).")
        g.add_argument("--masking", choices=("tube", "random"), help="tube (one spatial mask for all times) or random.")
        g.add_argument("--decoder-depth", type=int, help="decoder blocks (decoder_num_layers).")
        g.add_argument("--decoder-width", type=int, help="decoder width (decoder_hidden_dim).")
        g.add_argument("--decoder-heads", type=int, help="decoder attention heads (decoder_num_heads).")
        g.add_argument("--decoder-mlp", type=int, help="decoder MLP width (decoder_mlp_dim).")
        g.add_argument("--raw-pixel-loss", action="store_true",
                       help="regress raw pixels instead of per-patch normalised ones (norm_pix_loss off).")
        flags.add_training_args(g, "drop_path", drop_path="encoder stochastic depth")
        g.add_argument("--flip-prob", type=float, help="horizontal flip probability (one per clip).")
        g.add_argument("--holdout", type=int, help="held-out videos for the validation loss "
                       "(from the test split / --val-list when there is one, else set aside from training).")
        g.add_argument("--reconstructions", type=int, help="held-out clips drawn in reconstructions.png.")

    def resolve_defaults(self, args):
        if args.sampling_rate is None and args.dataset in SPARSE_SAMPLING:
            args.sampling_rate = 4
        return super().resolve_defaults(args)

    def build_datasets(self, args):
        """(training videos, held-out videos), both unlabelled."""
        from keras_har.data.dataset_flags import dataset_index
        from keras_har.data.splits import DatasetIndexError
        from keras_har.data.unlabelled import UnlabelledVideos

        if args.dataset == "folder" and not args.data_root:
            raise DatasetIndexError("--dataset folder needs --data-root.")
        if args.dataset == "csv" and not args.train_list:
            raise DatasetIndexError("--dataset csv needs --train-list.")
        held_out = None
        if args.dataset == "folder":
            videos = UnlabelledVideos.from_folder(args.data_root)
        elif args.dataset == "csv":
            videos = UnlabelledVideos.from_csv(args.train_list, root=args.data_root)
            if args.val_list:
                held_out = UnlabelledVideos.from_csv(args.val_list, root=args.data_root)
        else:
            videos = UnlabelledVideos.from_dataset(dataset_index(args, "train"))
            held_out = UnlabelledVideos.from_dataset(dataset_index(args, "test"))
        if held_out is None:
            # Set aside --holdout videos (seeded), never trained on.
            order = np.random.default_rng([args.seed, 3]).permutation(len(videos))
            keep = sorted(order[args.holdout:])
            if not keep:
                raise ValueError(f"{len(videos)} videos leave none for training after --holdout {args.holdout}.")
            held_out = UnlabelledVideos([videos.paths[i] for i in sorted(order[: args.holdout])], "held-out")
            videos = UnlabelledVideos([videos.paths[i] for i in keep], videos.name)
        # Evenly spaced held-out videos (the test splits are ordered by class).
        picks = np.unique(np.linspace(0, len(held_out) - 1, max(1, args.holdout)).round().astype(int))
        return videos, UnlabelledVideos([held_out.paths[i] for i in picks], held_out.name)

    def build_model(self, args):
        from keras_har.models import VIDEOMAE_ARCHITECTURES, VideoMAEBackbone, VideoMAEPretrainer

        task = dict(
            mask_ratio=args.mask_ratio, masking=args.masking, norm_pix_loss=not args.raw_pixel_loss,
        )
        if args.preset in VIDEOMAE_ARCHITECTURES:
            # No encoder norm (use_mean_pooling): the encoder is then exactly the one
            # VideoMAE fine-tunes (mean pooling + a new fc_norm).
            backbone = VideoMAEBackbone.from_architecture(
                args.preset, image_size=args.image_size, num_frames=args.num_frames,
                drop_path_rate=args.drop_path, use_mean_pooling=True,
            )
            return VideoMAEPretrainer(
                backbone, decoder_hidden_dim=args.decoder_width, decoder_num_layers=args.decoder_depth,
                decoder_num_heads=args.decoder_heads, decoder_mlp_dim=args.decoder_mlp, **task,
            )
        # Continue pre-training: the checkpoint's architecture, encoder and decoder.
        model = VideoMAEPretrainer.from_preset(args.preset, **task)
        backbone = model.backbone
        if (backbone.num_frames, tuple(backbone.image_size)) != (args.num_frames, (args.image_size,) * 2):
            raise ValueError(
                f"--preset {args.preset} takes {backbone.num_frames} frames of {backbone.image_size[0]}x"
                f"{backbone.image_size[1]}; pass --num-frames {backbone.num_frames} --image-size "
                f"{backbone.image_size[0]} (got {args.num_frames} and {args.image_size})."
            )
        return model

    def compile_model(self, model, args, steps):
        from keras_har.training import experiment
        from keras_har.training.optimizers import build_adamw

        total_batch = args.batch_size * args.grad_accum
        lr = args.base_lr * total_batch / 256
        schedule = experiment.warmup_cosine(lr, steps * args.epochs, args.warmup_epochs / max(1, args.epochs))
        optimizer = build_adamw(
            model, schedule, weight_decay=args.weight_decay, clip_norm=args.clip_norm, grad_accum=args.grad_accum,
            beta_1=args.beta_1, beta_2=args.beta_2,  # no decay on what model.no_weight_decay() names
        )
        model.compile(optimizer=optimizer)
        return lr

    def loader(self, run, videos, training):
        args = run.args
        return run.loader(videos, training, mask_generator=run.model.mask_generator(),
                          flip_prob=args.flip_prob, epochs=args.epochs,
                          batch_size=args.batch_size if training else min(args.batch_size, len(videos)))

    def prepare(self, args):
        from keras_har.training import experiment

        videos, held_out = self.build_datasets(args)
        run_dir = experiment.make_run_dir(args, self.run_name)
        model = self.build_model(args)
        return Run(args, run_dir, experiment.load_state(run_dir), model, videos, held_out)

    def train(self, run):
        import keras

        train_loader = self.loader(run, run.train_set, training=True)
        lr = self.compile_model(run.model, run.args, train_loader.steps_per_epoch)
        logger.info("run directory %s | backend %s | %d unlabelled videos, %d held out | %d of %d tokens "
                    "masked (%s) | lr %.3g", run.run_dir, keras.backend.backend(), len(run.train_set),
                    len(run.val_set), run.model.num_masked, run.model.num_tokens, run.model.masking, lr)
        run.fit(1, run.args.epochs, train_loader, self.loader(run, run.val_set, training=False))

    def save_reconstructions(self, run, path):
        """reconstructions.png: the first --reconstructions held-out clips."""
        import keras

        from keras_har import plots

        model, held_out = run.model, run.val_set
        loader = self.loader(run, held_out, training=False)
        count = min(run.args.reconstructions, len(held_out))
        samples = [loader.sampler.load(i, 0) for i in range(count)]
        videos = np.stack([x for x, _ in samples])
        masks = np.stack([m for _, m in samples]).astype(bool)
        frames, masked, recon = model.reconstruct(videos, masks)
        loss, _ = model.compute_loss_and_logits(videos, masks)
        title = (f"VideoMAE pre-training: {model.mask_ratio:.0%} {model.masking} masking, "
                 f"held-out loss {float(keras.ops.convert_to_numpy(loss)):.3f}")
        return plots.plot_reconstructions(frames, masked, recon, path, title=title)

    def finish(self, run):
        import keras

        from keras_har import plots
        from keras_har.training import checkpoints

        history = plots.read_history(run.run_dir / "history_phase1.csv")
        plots.plot_curves([("pre-training", history)], run.run_dir / "curves.png", title=self.title)
        self.save_reconstructions(run, run.run_dir / "reconstructions.png")
        checkpoints.save_preset(run.model, run.run_dir / "model")
        metrics = {
            "loss": history.get("loss", [float("nan")])[-1],
            "val_loss": history.get("val_loss", [float("nan")])[-1],
            "epochs": run.args.epochs,
            "num_videos": len(run.train_set),
            "backend": keras.backend.backend(),
        }
        checkpoints.write_json(run.run_dir / "metrics.json", metrics)
        return metrics

    def result_lines(self, run, metrics):
        return [f"Run directory: {run.run_dir}",
                f"loss {metrics['loss']:.4f} | held-out loss {metrics['val_loss']:.4f}",
                f"Fine-tune it: keras-har train videomae-two-phase --preset {run.run_dir / 'model'}"]


RECIPE = VideoMAEPretrain()
main = RECIPE.main

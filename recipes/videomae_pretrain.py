"""VideoMAE masked-autoencoder pre-training on unlabelled video (VideoMAE's own method).

    KERAS_BACKEND=jax python recipes/videomae_pretrain.py             # built-in synthetic videos
    KERAS_BACKEND=jax python recipes/videomae_pretrain.py --dataset folder --data-root my_videos/
    KERAS_BACKEND=jax python recipes/videomae_pretrain.py --dataset hmdb51 \
        --data-root data/hmdb51 --split-dir data/testTrainMulti_7030_splits
    KERAS_BACKEND=jax python recipes/videomae_pretrain.py --preset hf://MCG-NJU/videomae-base ...

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
e.g. `recipes/videomae_two_phase.py --preset run/model`).
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
    import numpy as np
    from keras_har.training import checkpoints, experiment
    from keras_har.training.optimizers import build_adamw

logger = logging.getLogger("keras_har")

# The official VideoMAE pre-training scripts (ViT-B), for real datasets.
OFFICIAL_DEFAULTS = dict(
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
    OFFICIAL_DEFAULTS,
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
BASE_CONFIG = dict(patch_size=16, tubelet_size=2, hidden_size=768, num_layers=12, num_heads=12,
                   intermediate_size=3072)
TINY_CONFIG = dict(patch_size=8, tubelet_size=2, hidden_size=64, num_layers=4, num_heads=4,
                   intermediate_size=128)


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " (see the module docstring for details)",
    )
    experiment.add_data_args(parser)
    g = parser.add_argument_group("model and training (unset: the official value; the synthetic profile differs)")
    g.add_argument("--preset", help="'base' / 'tiny' (a new VideoMAE), or a checkpoint to continue from: "
                   "a transformers VideoMAEForPreTraining directory, hf://org/name, a known name or a "
                   "keras-har preset directory.")
    g.add_argument("--batch-size", type=int, help="clips per step (per optimizer update: x --grad-accum).")
    g.add_argument("--grad-accum", type=int, help="gradient accumulation steps.")
    g.add_argument("--epochs", type=int, help="pre-training epochs.")
    g.add_argument("--warmup-epochs", type=int, help="epochs of linear warm-up before the cosine decay.")
    g.add_argument("--base-lr", type=float, help="learning rate per 256 clips: lr = base-lr x total batch / 256.")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (not on biases, norms, mask token).")
    g.add_argument("--beta-1", type=float, help="AdamW beta 1.")
    g.add_argument("--beta-2", type=float, help="AdamW beta 2.")
    g.add_argument("--clip-norm", type=float, help="global gradient norm clip (0 disables; official: none).")
    g.add_argument("--mask-ratio", type=float, help="fraction of tokens masked (official UCF101: 0.75).")
    g.add_argument("--masking", choices=("tube", "random"), help="tube (one spatial mask for all times) or random.")
    g.add_argument("--decoder-depth", type=int, help="decoder blocks (transformers' decoder_num_hidden_layers).")
    g.add_argument("--decoder-width", type=int, help="decoder width (decoder_hidden_size).")
    g.add_argument("--decoder-heads", type=int, help="decoder attention heads (decoder_num_attention_heads).")
    g.add_argument("--decoder-mlp", type=int, help="decoder MLP width (decoder_intermediate_size).")
    g.add_argument("--raw-pixel-loss", action="store_true",
                   help="regress raw pixels instead of per-patch normalised ones (norm_pix_loss off).")
    g.add_argument("--drop-path", type=float, help="encoder stochastic depth.")
    g.add_argument("--flip-prob", type=float, help="horizontal flip probability (one per clip).")
    g.add_argument("--holdout", type=int, help="held-out videos for the validation loss "
                   "(from the test split / --val-list when there is one, else set aside from training).")
    g.add_argument("--reconstructions", type=int, help="held-out clips drawn in reconstructions.png.")
    experiment.add_run_args(parser)
    experiment.annotate_defaults(parser, OFFICIAL_DEFAULTS, SYNTHETIC_DEFAULTS)
    return parser


def resolve_defaults(args):
    if args.sampling_rate is None and args.dataset in SPARSE_SAMPLING:
        args.sampling_rate = 4
    return experiment.resolve_defaults(args, OFFICIAL_DEFAULTS, SYNTHETIC_DEFAULTS)


def build_datasets(args):
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
            raise SystemExit(f"{len(videos)} videos leave none for training after --holdout {args.holdout}.")
        held_out = UnlabelledVideos([videos.paths[i] for i in sorted(order[: args.holdout])], "held-out")
        videos = UnlabelledVideos([videos.paths[i] for i in keep], videos.name)
    # Evenly spaced held-out videos (the test splits are ordered by class).
    picks = np.unique(np.linspace(0, len(held_out) - 1, max(1, args.holdout)).round().astype(int))
    return videos, UnlabelledVideos([held_out.paths[i] for i in picks], held_out.name)


def build_model(args):
    # Imported here, not at the top: the loader's worker processes re-import this
    # script, and keras_har.models pulls in keras-hub and TensorFlow (seconds each).
    from keras_har.models import VideoMAEBackbone, VideoMAEPretrainer

    task = dict(
        mask_ratio=args.mask_ratio, masking=args.masking, norm_pix_loss=not args.raw_pixel_loss,
    )
    if args.preset in ("base", "tiny"):
        config = BASE_CONFIG if args.preset == "base" else TINY_CONFIG
        # No encoder norm (use_mean_pooling): the encoder is then exactly the one
        # VideoMAE fine-tunes (mean pooling + a new fc_norm).
        backbone = VideoMAEBackbone(
            image_size=args.image_size, num_frames=args.num_frames, drop_path_rate=args.drop_path,
            use_mean_pooling=True, **config,
        )
        return VideoMAEPretrainer(
            backbone, decoder_hidden_size=args.decoder_width, decoder_num_hidden_layers=args.decoder_depth,
            decoder_num_attention_heads=args.decoder_heads, decoder_intermediate_size=args.decoder_mlp, **task,
        )
    # Continue pre-training: the checkpoint's architecture, encoder and decoder.
    model = VideoMAEPretrainer.from_preset(args.preset, **task)
    backbone = model.backbone
    if (backbone.num_frames, tuple(backbone.image_size)) != (args.num_frames, (args.image_size,) * 2):
        raise SystemExit(
            f"--preset {args.preset} takes {backbone.num_frames} frames of {backbone.image_size[0]}x"
            f"{backbone.image_size[1]}; pass --num-frames {backbone.num_frames} --image-size "
            f"{backbone.image_size[0]} (got {args.num_frames} and {args.image_size})."
        )
    return model


def compile_model(model, args, steps):
    total_batch = args.batch_size * args.grad_accum
    lr = args.base_lr * total_batch / 256
    schedule = experiment.warmup_cosine(lr, steps * args.epochs, args.warmup_epochs / max(1, args.epochs))
    optimizer = build_adamw(
        model, schedule, weight_decay=args.weight_decay, clip_norm=args.clip_norm, grad_accum=args.grad_accum,
        beta_1=args.beta_1, beta_2=args.beta_2,  # no decay on what model.no_weight_decay() names
    )
    model.compile(optimizer=optimizer)
    return lr


def make_loader(args, videos, model, training):
    from keras_har.data.unlabelled import make_pretrain_loader

    return make_pretrain_loader(
        videos, training=training, batch_size=args.batch_size if training else min(args.batch_size, len(videos)),
        mask_generator=model.mask_generator(), num_frames=args.num_frames, sampling_rate=args.sampling_rate,
        image_size=args.image_size, mean=model.image_mean, std=model.image_std, flip_prob=args.flip_prob,
        loader=args.loader, workers=args.workers, seed=args.seed, on_error=args.on_bad_video,
        epochs=args.epochs, bad_video_log=getattr(args, "bad_video_log", None),
    )


def save_reconstructions(model, args, held_out, path):
    """reconstructions.png: the first --reconstructions held-out clips."""
    from keras_har import plots

    loader = make_loader(args, held_out, model, training=False)
    count = min(args.reconstructions, len(held_out))
    samples = [loader.sampler.load(i, 0) for i in range(count)]
    videos = np.stack([x for x, _ in samples])
    masks = np.stack([m for _, m in samples]).astype(bool)
    frames, masked, recon = model.reconstruct(videos, masks)
    loss, _ = model.compute_loss_and_logits(videos, masks)
    title = (f"VideoMAE pre-training: {model.mask_ratio:.0%} {model.masking} masking, "
             f"held-out loss {float(keras.ops.convert_to_numpy(loss)):.3f}")
    return plots.plot_reconstructions(frames, masked, recon, path, title=title)


def main(argv=None):
    experiment.setup_logging()
    parser = build_parser()
    args = experiment.load_config_for_resume(parser, argv)
    resolve_defaults(args)
    experiment.set_precision_and_distribution(args)
    videos, held_out = build_datasets(args)
    run_dir = experiment.make_run_dir(args, "videomae_pretrain")
    model = build_model(args)
    steps = experiment.steps_per_epoch(len(videos), args.batch_size)
    lr = compile_model(model, args, steps)
    logger.info("run directory %s | backend %s | %d unlabelled videos, %d held out | %d of %d tokens "
                "masked (%s) | lr %.3g", run_dir, keras.backend.backend(), len(videos), len(held_out),
                model.num_masked, model.num_tokens, model.masking, lr)

    state = experiment.load_state(run_dir)
    train_loader = make_loader(args, videos, model, training=True)
    val_loader = make_loader(args, held_out, model, training=False)
    state = experiment.fit_phase(model, 1, args.epochs, train_loader, val_loader, run_dir, state, args.verbose)

    from keras_har import plots

    history = plots.read_history(run_dir / "history_phase1.csv")
    plots.plot_curves([("pre-training", history)], run_dir / "curves.png", title="VideoMAE pre-training")
    save_reconstructions(model, args, held_out, run_dir / "reconstructions.png")
    checkpoints.save_preset(model, run_dir / "model")
    metrics = {
        "loss": history.get("loss", [float("nan")])[-1],
        "val_loss": history.get("val_loss", [float("nan")])[-1],
        "epochs": args.epochs,
        "num_videos": len(videos),
        "backend": keras.backend.backend(),
    }
    checkpoints.write_json(run_dir / "metrics.json", metrics)
    print(f"\nRun directory: {run_dir}\nloss {metrics['loss']:.4f} | held-out loss {metrics['val_loss']:.4f}"
          f"\nFine-tune it: python recipes/videomae_two_phase.py --preset {run_dir / 'model'}")
    return metrics


if __name__ == "__main__":
    experiment.run_main(main)

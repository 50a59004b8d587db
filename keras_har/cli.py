"""The `keras-har` command: evaluate a run, label videos, convert checkpoints.

    keras-har evaluate --run-dir runs/videomae_two_phase-...          # its own test split
    keras-har evaluate --preset ./videomae-base-finetuned-kinetics --dataset folder --data-root clips/
    keras-har predict clip1.avi clip2.mp4 --run-dir runs/videomae_two_phase-... [--json]
    keras-har convert ./videomae-base-finetuned-kinetics ./videomae_base_k400_keras

Bad paths and unreadable videos give one clear line on stderr and exit status 2.
"""

import argparse
import json
import logging
import os
import pathlib
import sys

EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _model_from_args(args, **kwargs):
    from keras_har.models.auto import load_classifier

    if bool(args.run_dir) == bool(args.preset):
        raise CLIError("give exactly one of --run-dir DIR or --preset P")
    if args.run_dir:
        run_dir = pathlib.Path(args.run_dir)
        model_dir = run_dir / "model"
        if not model_dir.is_dir():
            raise CLIError(f"{run_dir}: no trained model in it (expected {model_dir}/); "
                           "is it a finished run directory?")
        return load_classifier(model_dir, **kwargs)
    return load_classifier(args.preset, **kwargs)


def _run_config(args):
    """The run's config.json (dataset flags and clip settings), if any."""
    if getattr(args, "run_dir", None):
        path = pathlib.Path(args.run_dir) / "config.json"
        if path.exists():
            return json.loads(path.read_text())
    return {}


def _clip_settings(args, model, saved):
    """num_frames / sampling_rate / image_size: flags, else the run's, else the model's."""
    backbone = model.backbone
    frames = getattr(backbone, "num_frames", None)
    size = getattr(backbone, "image_size", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    if size is None and hasattr(backbone, "image_shape"):
        size = backbone.image_shape[0]
    return (
        args.num_frames or saved.get("num_frames") or frames or 16,
        args.sampling_rate or saved.get("sampling_rate") or 2,
        args.image_size or saved.get("image_size") or size or 224,
    )


def cmd_evaluate(args):
    from keras_har import evaluation, plots
    from keras_har.training import checkpoints, experiment

    model = _model_from_args(args)
    saved = _run_config(args)
    data_args = argparse.Namespace(**{**saved, **{k: v for k, v in vars(args).items() if v is not None}})
    if not getattr(data_args, "dataset", None):
        raise CLIError("--dataset is needed with --preset (or evaluate a --run-dir)")
    data_args.num_frames, data_args.sampling_rate, data_args.image_size = _clip_settings(args, model, saved)
    data_args.batch_size = args.batch_size
    data_args.seed = getattr(data_args, "seed", 0) or 0
    for key, default in (("loader", "grain"), ("workers", 2), ("on_bad_video", "skip"), ("split", 1)):
        if getattr(data_args, key, None) is None:
            setattr(data_args, key, default)
    _, test_set = experiment.build_datasets(data_args)
    if list(test_set.class_names) != list(model.class_names):
        raise CLIError(
            f"the dataset's {len(test_set.class_names)} classes are not the model's "
            f"{model.num_classes} ({', '.join(test_set.class_names[:3])}... vs "
            f"{', '.join(model.class_names[:3])}...)"
        )
    views = {"single": "single", "tta": "tta6", "official": "official"}[args.views]
    loader = experiment.make_loader(data_args, test_set, model, training=False, views=views,
                                    num_clips=args.num_clips)
    result = evaluation.evaluate(model, loader, paths=[p for p, _ in test_set.items])
    out = pathlib.Path(args.output or args.run_dir or ".")
    out.mkdir(parents=True, exist_ok=True)
    import keras

    metrics = {args.views: evaluation.summary(result), "num_videos": result["num_videos"],
               "backend": keras.backend.backend()}
    checkpoints.write_json(out / "metrics.json", metrics)
    checkpoints.write_json(out / f"evaluation_{args.views}.json", result)
    plots.plot_confusion_matrix(result["confusion_matrix"], result["class_names"],
                                out / "confusion_matrix.png",
                                title=f"{args.views}: top-1 {result['top1']:.3f}")
    print(f"{args.views}: top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  "
          f"mean class accuracy {result['mean_class_accuracy']:.4f}  ({result['num_videos']} videos)")
    print(f"wrote {out / 'metrics.json'} and {out / 'confusion_matrix.png'}")
    return 0


def cmd_predict(args):
    import numpy as np

    from keras_har import data, evaluation

    missing = [v for v in args.videos if not os.path.isfile(v)]
    if missing:
        raise CLIError(f"no such video file: {missing[0]}")
    model = _model_from_args(args)
    num_frames, sampling_rate, image_size = _clip_settings(args, model, _run_config(args))
    views = {"single": "single", "tta": "tta6", "official": "official"}[args.views]
    results = []
    for path in args.videos:
        try:
            x = data.load_video_views(
                path, num_frames=num_frames, sampling_rate=sampling_rate, image_size=image_size,
                mean=model.image_mean, std=model.image_std, views=views, num_clips=args.num_clips,
            )
        except data.VideoReadError as e:
            raise CLIError(str(e)) from None
        logits = evaluation.view_logits(model, x[None] if x.ndim == 5 else x[None, None])
        probs = evaluation.softmax(logits)[0]
        top = np.argsort(-probs)[: min(args.top_k, len(probs))]
        results.append({"video": path, "top": [[model.class_names[i], float(probs[i])] for i in top]})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(r["video"])
            for name, p in r["top"]:
                print(f"  {p:6.1%}  {name}")
    return 0


def cmd_convert(args):
    from keras_har.models.auto import load_classifier

    dest = pathlib.Path(args.dest)
    if dest.exists() and any(dest.iterdir()) and not args.overwrite:
        raise CLIError(f"{dest} exists and is not empty (pass --overwrite)")
    kwargs = {}
    if args.num_classes:
        kwargs["num_classes"] = args.num_classes
    model = load_classifier(args.src, **kwargs)
    model.save_to_preset(dest)
    print(f"wrote {type(model).__name__} ({model.num_classes} classes, "
          f"{model.count_params():,} parameters) to {dest}")
    return 0


def _add_model_args(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--run-dir", help="a finished recipe run (uses its model/ and config.json)")
    g.add_argument("--preset", help="a preset: directory, hf://org/name or known name")
    p.add_argument("--num-frames", type=int, help="frames per clip (default: the model's)")
    p.add_argument("--sampling-rate", type=int, help="frame stride (default: the run's, else 2)")
    p.add_argument("--image-size", type=int, help="crop size (default: the model's)")
    p.add_argument("--views", choices=("single", "tta", "official"), default="single",
                   help="single centre view; tta = 3 crops x flip (6 views); official = "
                        "--num-clips temporal clips x 3 crops")
    p.add_argument("--num-clips", type=int, default=1, help="temporal clips for --views official")


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-har", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("evaluate", help="test metrics of a run or a preset on a dataset",
                       description="Evaluate a model on a dataset's test split: writes metrics.json, "
                                   "evaluation_<views>.json (per-class accuracy, confusion matrix, "
                                   "per-video predictions) and confusion_matrix.png.")
    _add_model_args(p)
    from keras_har.training.experiment import add_data_args

    add_data_args(p)
    for action in p._actions:
        if action.dest in ("dataset", "split", "loader", "workers", "on_bad_video"):
            action.default = None
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--output", help="where to write (default: the run directory, else .)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top-k labels of video files",
                       description="Label video files of any length and resolution with the "
                                   "top-k classes and their probabilities.")
    p.add_argument("videos", nargs="+", help="video files (.avi, .mp4, ...)")
    _add_model_args(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("convert", help="write a Hugging Face / timm checkpoint as a keras-har preset",
                       description="Convert SRC (a Hugging Face VideoMAE or timm ViT directory, a "
                                   "timm state-dict file, an hf:// handle or a known name) into our "
                                   "preset format at DEST.")
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--num-classes", type=int, help="replace the head with a new one of this size")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except CLIError as e:
        print(f"keras-har {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, ValueError) as e:
        print(f"keras-har {args.command}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

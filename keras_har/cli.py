"""The `keras-har` command: train, evaluate a run, label videos, convert checkpoints.

    keras-har train videomae-two-phase                                 # the built-in synthetic data
    keras-har train baseline-vit-small --dataset hmdb51 --data-root ... --split-dir ...
    keras-har pretrain --dataset folder --data-root my_videos/
    keras-har evaluate --run-dir runs/videomae_two_phase-...          # its own test split
    keras-har evaluate --preset ./videomae_k400_keras --dataset folder --data-root clips/
    keras-har predict clip1.avi clip2.mp4 --run-dir runs/videomae_two_phase-... [--json]
    keras-har convert ./videomae-base-finetuned-kinetics ./videomae_base_k400_keras
    keras-har prepare data/kinetics400 data/kinetics400_320             # re-encode for fast loading
    keras-har export --run-dir runs/videomae_two_phase-... --format onnx --output model.onnx
    keras-har predict clip.mp4 --exported model.onnx [--window 2 --stride 1 --timeline]

The backend is Keras's: set KERAS_BACKEND=jax|torch|tensorflow. Bad paths and
unreadable videos give one clear line on stderr and exit status 2
(KERAS_HAR_DEBUG=1 shows the full traceback instead).
"""

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import sys
import textwrap

from keras_har import flags
from keras_har.data import views as view_protocols
from keras_har.data.dataset_flags import DATASET_KEYS
from keras_har.errors import EXIT_USAGE, CLIError
from keras_har.errors import debug as _debug
from keras_har.errors import one_line as _one_line
from keras_har.utils.terminal import quiet_native_stderr


def _load_backend():
    """Keras, its backend and keras-hub, quietly."""
    from keras_har.utils.import_order import load_backend

    load_backend()


def _check_model_args(args):
    if bool(args.run_dir) == bool(args.preset):
        raise CLIError("give one of --run-dir DIR or --preset P")
    if args.run_dir:
        run_dir = pathlib.Path(args.run_dir)
        if not run_dir.is_dir():
            raise CLIError(f"{run_dir}: no such run directory")
        if not (run_dir / "model").is_dir():
            raise CLIError(f"{run_dir}: no model/ in it; is it a finished run directory?")
    if getattr(args, "num_clips", None) is not None and args.views != "official":
        raise CLIError("--num-clips is for --views official")


def _load(source, **kwargs):
    """`load_classifier(source)`, any failure as one line naming the source."""
    _load_backend()
    from keras_har.models.auto import load_classifier

    try:
        with quiet_native_stderr():
            return load_classifier(source, **kwargs)
    except (CLIError, KeyboardInterrupt):
        raise
    except Exception as e:
        if _debug():
            raise
        message = _one_line(e)
        if str(source) not in message:
            message = f"{source}: {message}"
        raise CLIError(message) from None


def _model_from_args(args):
    """(model, where it came from) for --run-dir / --preset."""
    source = pathlib.Path(args.run_dir) / "model" if args.run_dir else args.preset
    return _load(source), str(source)


def _run_config(args):
    """The run's config.json (dataset flags and clip settings), if any."""
    if not getattr(args, "run_dir", None):
        return {}
    path = pathlib.Path(args.run_dir) / "config.json"
    if not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CLIError(f"{path}: unreadable ({_one_line(e)})") from None
    if not isinstance(saved, dict):
        raise CLIError(f"{path}: not a JSON object")
    return saved


def _clip_settings(args, model, saved):
    """num_frames / sampling_rate / image_size: flags, else the run's, else the model's."""
    from keras_har.evaluation import clip_settings

    from keras_har.evaluation import check_clip_settings

    try:
        settings = clip_settings(
            model,
            num_frames=args.num_frames or saved.get("num_frames"),
            sampling_rate=args.sampling_rate or saved.get("sampling_rate"),
            image_size=args.image_size or saved.get("image_size"),
        )
        check_clip_settings(model, settings[0], settings[2])
    except ValueError as e:
        raise CLIError(f"{_one_line(e).rstrip('.')} (see --num-frames, --image-size)") from None
    return settings


def _dataset_settings(args, saved):
    """The dataset flags: the command line's, else the run's (when the command
    line does not name another dataset)."""
    same = args.dataset is None or args.dataset == saved.get("dataset")
    settings = {k: (saved.get(k) if same else None) for k in DATASET_KEYS}
    for key in DATASET_KEYS:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    if not settings["dataset"]:
        raise CLIError("give --dataset (and its flags) with --preset, or evaluate a --run-dir")
    for key in ("data_root", "split_dir", "val_list"):  # fail before loading a model
        if settings.get(key) and not os.path.exists(os.path.expanduser(str(settings[key]))):
            if not (key == "data_root" and settings["dataset"] == "synthetic"):  # generated there
                raise CLIError(f"{settings[key]}: no such file or directory "
                               f"(--{key.replace('_', '-')})")
    return settings


def _test_dataset(settings, class_names):
    """The test index of the dataset flags, labelled with the model's classes
    where the format allows it."""
    from keras_har.data.dataset_flags import dataset_index

    return dataset_index(settings, "test", class_names=class_names)


def cmd_evaluate(args):
    _check_model_args(args)
    saved = _run_config(args)
    settings = _dataset_settings(args, saved)
    model, source = _model_from_args(args)
    from keras_har import evaluation

    test_set = _test_dataset(settings, model.class_names if model.labels else None)
    if list(test_set.class_names) != list(model.class_names) and (
        model.labels or len(test_set.class_names) != model.num_classes
    ):
        raise CLIError(
            f"the dataset's {len(test_set.class_names)} classes are not the model's "
            f"{model.num_classes} ({', '.join(test_set.class_names[:3])}... vs "
            f"{', '.join(model.class_names[:3])}...)"
        )
    num_frames, sampling_rate, image_size = _clip_settings(args, model, saved)
    num_clips = (args.num_clips or view_protocols.OFFICIAL_CLIPS) if args.views == "official" else 1

    def option(key, default):  # the flag, else the run's, else the default
        return next(v for v in (getattr(args, key), saved.get(key), default) if v is not None)

    result = evaluation.evaluate(
        model, test_set, views=args.views, num_clips=num_clips, num_frames=num_frames,
        sampling_rate=sampling_rate, image_size=image_size, batch_size=args.batch_size,
        loader=option("loader", "grain"), workers=option("workers", 2),
        on_error=option("on_bad_video", "skip"), progress=sys.stderr.isatty(),
    )
    name = f"official{num_clips}" if args.views == "official" else args.views
    out = pathlib.Path(args.output) if args.output else pathlib.Path(args.run_dir or ".") / f"evaluation-{name}"
    import keras

    from keras_har.training.experiment import write_evaluation

    protocol = {"single": "single_view", "tta": "tta", "official": "official"}[args.views]
    skipped = [str(p) for p in result["skipped_videos"]]
    metrics = evaluation.test_metrics(
        {protocol: result}, tta_views=result["num_views"] if protocol == "tta" else None,
        official_clips=num_clips if protocol == "official" else None,
        skipped_videos={"train": [], "test": skipped},
        selection=None, num_val_videos=None,
        clip={"num_frames": num_frames, "sampling_rate": sampling_rate, "image_size": image_size},
        dataset={k: v for k, v in settings.items() if v is not None},
        model=source,
        backend=keras.backend.backend(),
    )
    write_evaluation(out, metrics, {protocol: result}, name)
    skipped = f", {len(skipped)} unreadable skipped" if skipped else ""
    low, high = result["top1_ci95"]
    print(f"{name} ({result['num_views']} views): top-1 {result['top1']:.4f} (95% CI {low:.3f}-{high:.3f})  "
          f"top-5 {result['top5']:.4f}  "
          f"mean class accuracy {result['mean_class_accuracy']:.4f}  ({result['num_videos']} videos{skipped})")
    print(f"wrote {out / 'metrics.json'}, {out / 'evaluation.json'} and {out / 'confusion_matrix.png'}")
    return 0


def cmd_predict(args):
    import numpy as np

    from keras_har.data import decoding

    _check_predict_args(args)
    errors = {}

    def bad(path, message):
        message = _one_line(message)
        errors[path] = message if message.startswith(path) else f"{path}: {message}"
        print(f"keras-har predict: error: {errors[path]}", file=sys.stderr)

    for path in args.videos:  # fail fast, before loading any model
        if os.path.isdir(path):
            bad(path, "is a directory, not a video file")
        elif not os.path.isfile(path):
            bad(path, "no such video file")
        else:
            try:
                decoding.probe(path)
            except decoding.VideoReadError as e:
                bad(path, e)
    if len(errors) == len(args.videos):
        return EXIT_USAGE
    model, (num_frames, sampling_rate, image_size), view_logits = _predict_model(args)
    from keras_har import data, evaluation

    num_clips = (args.num_clips or view_protocols.OFFICIAL_CLIPS) if args.views == "official" else 1
    views = view_protocols.loader_views(args.views)
    if args.window:
        return _predict_windows(args, model, (num_frames, sampling_rate, image_size), view_logits,
                                views, errors)
    results = []
    for path in args.videos:
        if path in errors:
            results.append({"video": path, "error": errors[path]})
            continue
        try:
            x = data.load_video_views(
                path, num_frames=num_frames, sampling_rate=sampling_rate, image_size=image_size,
                mean=model.image_mean, std=model.image_std, views=views, num_clips=num_clips,
            )
        except Exception as e:  # decoding.VideoReadError, cv2.error
            if _debug():
                raise
            bad(path, e)
            results.append({"video": path, "error": errors[path]})
            continue
        if views == "official":  # VideoMAE's protocol: the views' probabilities averaged
            per_view = view_logits(model, x[:, None])  # (V, 1, T, S, S, 3) -> (V, C)
            probs = evaluation.softmax(evaluation.average_views(np.asarray(per_view)[None], "softmax"))[0]
        else:
            logits = view_logits(model, x[None])  # (1, [V,] T, S, S, 3): views' logits averaged
            probs = evaluation.softmax(logits)[0]
        top = np.argsort(-probs, kind="stable")[: args.top_k]
        results.append({
            "video": path,
            "views": args.views,
            "num_views": 1 if x.ndim == 4 else int(x.shape[0]),
            "top": [{"label": model.class_names[i], "probability": float(probs[i])} for i in top],
        })
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "top" in r:
                print(r["video"])
                for t in r["top"]:
                    print(f"  {t['probability']:7.2%}  {t['label']}")
    return EXIT_USAGE if errors else 0


def _check_predict_args(args):
    """predict: one model source (--exported, or --run-dir / --preset) and
    window flags that fit."""
    if args.exported:
        if args.run_dir or args.preset:
            raise CLIError("give --exported PATH or --run-dir / --preset, not both")
        if args.num_frames or args.image_size:
            raise CLIError("--num-frames and --image-size are fixed when a model is exported")
        if args.num_clips is not None and args.views != "official":
            raise CLIError("--num-clips is for --views official")
    else:
        _check_model_args(args)
        if args.runtime:
            raise CLIError("--runtime is for --exported")
        if args.precision:
            raise CLIError("--precision is for --exported")
    if args.stride and not args.window:
        raise CLIError("--stride is for --window")
    if args.window:
        if args.views == "official":
            raise CLIError("--window takes --views single or tta (one clip per window)")
        if args.window <= 0 or (args.stride is not None and args.stride <= 0):
            raise CLIError("--window and --stride are positive seconds")
    elif args.timeline or args.output:
        raise CLIError("--timeline and --output are for --window")


def _predict_model(args):
    """(model, (num_frames, sampling_rate, image_size), view_logits) for
    predict: an exported model run by its runtime (no Keras), or a Keras one."""
    if args.exported:
        from keras_har import runtimes

        try:
            with quiet_native_stderr():
                model = runtimes.load_exported(args.exported, runtime=args.runtime, precision=args.precision)
        except runtimes.ExportedModelError as e:
            raise CLIError(_one_line(e)) from None
        settings = (model.num_frames, args.sampling_rate or model.sampling_rate, model.image_size)
        return model, settings, runtimes.view_logits
    model, _ = _model_from_args(args)
    from keras_har import evaluation

    return model, _clip_settings(args, model, _run_config(args)), evaluation.view_logits


def _predict_windows(args, model, settings, view_logits, views, errors):
    """predict --window: labels of every window of each video (stdout, or
    --output CSV/JSON) and, with --timeline, timeline.png."""
    from keras_har import long_video, plots

    num_frames, sampling_rate, image_size = settings
    stride = args.stride or args.window
    videos = [v for v in args.videos if v not in errors]
    results = []
    for path in videos:
        try:
            results.append(long_video.label_windows(
                path, lambda x: view_logits(model, x), window=args.window, stride=stride,
                num_frames=num_frames, sampling_rate=sampling_rate, image_size=image_size,
                mean=model.image_mean, std=model.image_std, class_names=model.class_names,
                views=views, top_k=args.top_k, progress=sys.stderr.isatty()))
        except Exception as e:  # decoding.VideoReadError, cv2.error
            if _debug():
                raise
            message = _one_line(e)
            errors[path] = message if message.startswith(path) else f"{path}: {message}"
            print(f"keras-har predict: error: {errors[path]}", file=sys.stderr)
    written = []
    if args.output:
        try:
            written.append(long_video.write_windows(results, args.output))
        except (OSError, ValueError) as e:
            raise CLIError(_one_line(e)) from None
    if args.timeline:
        where = pathlib.Path(args.output).parent if args.output else pathlib.Path(".")
        for r in results:
            name = "timeline.png" if len(results) == 1 else f"{pathlib.Path(r['video']).stem}_timeline.png"
            written.append(plots.plot_timeline(r, where / name))
    if args.json:
        print(json.dumps([long_video.as_json(r) for r in results], indent=2))
    elif not args.output:
        for r in results:
            print(f"{r['video']} ({r['duration']:.1f} s, {len(r['windows'])} windows)")
            for w in r["windows"]:
                top = "  ".join(f"{t['probability']:6.1%} {t['label']}" for t in w["top"][:3])
                print(f"  {w['start']:8.2f}-{w['end']:<8.2f} {top}")
    if written:
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return EXIT_USAGE if errors else 0


def cmd_export(args):
    _check_model_args(args)
    from keras_har import export

    _load_backend()
    import keras

    output = pathlib.Path(args.output)
    try:
        export.check_export(args.format, output, keras.backend.backend())
    except export.ExportError as e:
        raise CLIError(_one_line(e)) from None
    if output.exists() and not args.overwrite:
        raise CLIError(f"{output}: exists (pass --overwrite)")
    model, source = _model_from_args(args)
    num_frames, sampling_rate, image_size = _clip_settings(args, model, _run_config(args))
    if output.is_dir():
        shutil.rmtree(output)
    try:
        with quiet_native_stderr():
            settings = export.export_classifier(model, output, args.format, num_frames=num_frames,
                                                sampling_rate=sampling_rate, image_size=image_size)
    except export.ExportError as e:
        raise CLIError(_one_line(e)) from None
    writer = export.exporting_backend(args.format, keras.backend.backend())
    under = "" if writer == keras.backend.backend() else f" (written under KERAS_BACKEND={writer})"
    print(f"wrote {args.format} {type(model).__name__} ({model.num_classes} classes, input "
          f"(batch, {num_frames}, {image_size}, {image_size}, 3)) to {output}, and {settings}{under}")
    return 0


def cmd_convert(args):
    src, dest = args.src, pathlib.Path(args.dest)
    if dest.exists():
        if not dest.is_dir():
            raise CLIError(f"{dest}: exists and is not a directory")
        if any(dest.iterdir()):
            if not args.overwrite:
                raise CLIError(f"{dest}: exists and is not empty (pass --overwrite)")
            if not (dest / "config.json").exists():
                raise CLIError(f"{dest}: not a preset directory; --overwrite only replaces presets")
    kwargs = {k: getattr(args, k) for k in ("num_classes", "num_heads", "image_size")
              if getattr(args, k) is not None}
    model = _load(src, **kwargs)
    from keras_har.training.checkpoints import save_preset

    with quiet_native_stderr():
        save_preset(model, dest)  # DEST is replaced whole, or left as it was
    print(f"wrote {type(model).__name__} ({model.num_classes} classes, "
          f"{model.count_params():,} parameters) to {dest}")
    return 0


def cmd_prepare(args):
    from keras_har.data import prepare

    dest = pathlib.Path(args.dest)
    # a missing SRC or a DST inside it: FileNotFoundError / ValueError, one line from main()
    result = prepare.prepare_dataset(args.src, dest, short_side=args.short_side,
                                     keyframe_interval=args.keyframe_interval,
                                     workers=args.workers, failures=args.failures)
    print(f"prepared {result['done']} of {result['videos']} videos ({result['frames']:,} frames) "
          f"into {dest}; {result['skipped']} already done, {result['failed']} failed")
    if result["failed"]:
        print(f"keras-har prepare: error: {result['failed']} videos failed, listed in "
              f"{result['failures_file']}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _add_model_args(p, views=True):
    flags.add_model_args(p)
    g = flags.add_clip_args(p, training=False)
    if not views:
        return
    g.add_argument("--views", choices=view_protocols.COMMAND_LINE_VIEWS, default="single",
                   help=view_protocols.HELP + " (default: single)")
    g.add_argument("--num-clips", type=flags.count(1), metavar="N",
                   help="temporal clips for --views official (default: 5)")


def _add_dataset_args(p):
    flags.add_dataset_args(p, training=False)
    g = flags.add_loader_args(p, training=False)
    g.add_argument("--batch-size", type=flags.count(1), metavar="N", default=4,
                   help="videos per model call (x views; default 4)")


def cmd_train(args):
    from keras_har.recipes import get_recipe
    from keras_har.training import experiment

    _load_backend()  # Keras and keras-hub (which imports TensorFlow) without TensorFlow's start-up lines
    recipe = get_recipe(args.recipe)
    prog = f"keras-har {args.command}" + (f" {args.recipe}" if args.command == "train" else "")
    try:
        recipe.main(args.recipe_args, prog=prog)
        return 0
    except BaseException as e:  # noqa: B036 -- SystemExit passes through
        if isinstance(e, SystemExit):
            raise
        # While the run directory is still held: the messages say where the run stands.
        return experiment.exit_status(e, prefix=f"keras-har {args.command}")
    finally:
        experiment.release_run_dirs()


def build_parser():
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="keras-har", description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        epilog=__doc__.split("\n\n")[2], formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from keras_har.recipes import PRETRAIN_RECIPE, TRAIN_RECIPES  # names only, no Keras

    p = sub.add_parser(
        "train", help="train a video classifier with a recipe (run directory, resumable)",
        formatter_class=formatter,
        description=_text(
            "Run a training recipe: " + ", ".join(TRAIN_RECIPES) + ". With no dataset flags it "
            "trains on the built-in synthetic videos (generated on first use); every number is a "
            "flag. `keras-har train NAME --help` lists a recipe's flags."),
        epilog="examples:\n  keras-har train videomae-two-phase\n"
               "  keras-har train videomae-two-phase --dataset hmdb51 --data-root data/hmdb51 "
               "--split-dir data/testTrainMulti_7030_splits\n"
               "  keras-har train baseline-vit-small --resume runs/baseline_vit_small-20250101-120000",
    )
    p.add_argument("recipe", choices=TRAIN_RECIPES, metavar="RECIPE", help=", ".join(TRAIN_RECIPES))
    p.add_argument("recipe_args", nargs=argparse.REMAINDER, metavar="...", help="the recipe's flags")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "pretrain", help="VideoMAE masked-autoencoder pre-training on unlabelled videos",
        formatter_class=formatter,
        description="Run the VideoMAE pre-training recipe; `keras-har pretrain --help` lists its flags.",
    )
    p.set_defaults(func=cmd_train, recipe=PRETRAIN_RECIPE, recipe_args=[])

    p = sub.add_parser(
        "evaluate", help="test metrics of a run or a preset on a dataset", formatter_class=formatter,
        description=_text(
            "Evaluate a model on a dataset's test split: top-1, top-5, mean class accuracy, "
            "per-class accuracy, confusion matrix. With --run-dir the dataset and clip settings "
            "are the run's (config.json); flags override them.",
            "Writes metrics.json (the summary), evaluation.json (per-class accuracy, confusion "
            "matrix, per-video predictions) and confusion_matrix.png into --output (default: "
            "RUN_DIR/evaluation-VIEWS, or ./evaluation-VIEWS with --preset)."),
        epilog="examples:\n  keras-har evaluate --run-dir runs/videomae_two_phase-20250101-120000 --views tta\n"
               "  keras-har evaluate --preset ./videomae_k400_keras --dataset folder --data-root clips/ "
               "--views official --num-clips 5",
    )
    _add_model_args(p)
    _add_dataset_args(p)
    p.add_argument("--output", metavar="DIR", help="where to write (default: see above)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict", help="top-k labels of video files", formatter_class=formatter,
        description=_text(
            "Label video files of any length and resolution with the model's top-k classes and "
            "their probabilities (softmax of the view-averaged logits).",
            "A video shorter than a clip repeats its last frame; frames are resized on the short "
            "edge and cropped. Unreadable files are reported on stderr, one line each, and the "
            "exit status is 2; the other videos are still labelled."),
        epilog="examples:\n  keras-har predict clip1.avi clip2.mp4 --run-dir runs/videomae_two_phase-20250101-120000\n"
               "  keras-har predict clip.mp4 --preset ./videomae_k400_keras --views tta --json\n"
               "  keras-har predict clip.mp4 --exported deploy/model.onnx\n"
               "  keras-har predict match.mp4 --exported deploy/model.onnx --window 2 --stride 1 "
               "--output labels.csv --timeline",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (.avi, .mp4, ...)")
    _add_model_args(p)
    p.add_argument("--exported", metavar="PATH",
                   help="run an exported model instead (keras-har export): .onnx with ONNX Runtime, "
                        ".xml with OpenVINO, a SavedModel directory with TensorFlow, .tflite with "
                        "LiteRT; no Keras needed")
    from keras_har.runtimes import RUNTIMES  # numpy only

    p.add_argument("--runtime", choices=RUNTIMES,
                   help="with --exported: the runtime to run it with (default: the one PATH's kind "
                        "says; e.g. --runtime openvino runs a .onnx file with OpenVINO)")
    p.add_argument("--precision", choices=("float32", "bfloat16", "float16"),
                   help="with --exported: the inference precision, for OpenVINO (bfloat16 is fast on CPUs "
                        "with AVX512-BF16 or AMX; default float32, the exported model's)")
    p.add_argument("--top-k", type=flags.count(1), metavar="N", default=5, help="labels per video (default 5)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: {video, views, num_views, top: [{label, probability}]} "
                        "per video ({video, error} for an unreadable one)")
    g = p.add_argument_group("long videos")
    g.add_argument("--window", type=float, metavar="SECONDS",
                   help="label every window of this many seconds (one clip centred in each)")
    g.add_argument("--stride", type=float, metavar="SECONDS",
                   help="seconds between window starts (default: --window, no overlap)")
    g.add_argument("--output", metavar="FILE",
                   help="write the window labels to FILE: .csv (video, start, end, rank, label, "
                        "probability) or .json")
    g.add_argument("--timeline", action="store_true",
                   help="also plot the class scores over time: timeline.png beside --output "
                        "(default: the current directory)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "export", help="write a model for ONNX Runtime, OpenVINO, TensorFlow or LiteRT",
        formatter_class=formatter,
        description=_text(
            "Export a run's or a preset's model with Keras' Model.export, with its clip settings, "
            "normalisation and label names in a JSON beside it (PATH.json; keras_har.json inside "
            "a SavedModel), so that `keras-har predict --exported PATH` -- or any program -- can "
            "run it without Keras. The batch size stays dynamic.",
            "Every format exports under every KERAS_BACKEND: tensorflow writes all four, torch "
            "openvino, jax saved_model; the others are written by a subprocess under "
            "KERAS_BACKEND=tensorflow (the same file, a few seconds more)."),
        epilog="examples:\n  keras-har export --run-dir runs/videomae_two_phase-20250101-120000 "
               "--format onnx --output deploy/model.onnx\n"
               "  keras-har export --preset ./videomae_k400_keras --format saved_model --output deploy/sm",
    )
    _add_model_args(p, views=False)
    from keras_har.export import FORMATS  # no Keras at import

    p.add_argument("--format", required=True, choices=FORMATS,
                   help="onnx (.onnx), openvino (.xml + .bin), saved_model (a directory), "
                        "litert (.tflite)")
    p.add_argument("--output", required=True, metavar="PATH", help="the file (directory for saved_model)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing PATH")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "convert", help="write a Hugging Face / timm checkpoint as a keras-har preset",
        formatter_class=formatter,
        description=_text(
            "Convert SRC -- a Hugging Face VideoMAE (or transformers ViT) directory, a timm ViT "
            "directory or state-dict file, an hf://org/name handle or a known preset name -- "
            "into keras-har's preset format at DEST. Use it with --preset DEST, or in Python "
            "with keras_har.load_classifier(DEST)."),
        epilog="examples:\n  keras-har convert ./videomae-base-finetuned-kinetics ./videomae_k400_keras\n"
               "  keras-har convert hf://timm/vit_small_patch16_224.augreg_in21k_ft_in1k ./vit_s --num-classes 51",
    )
    p.add_argument("src", metavar="SRC", help="the checkpoint to convert")
    p.add_argument("dest", metavar="DEST", help="the preset directory to write")
    p.add_argument("--num-classes", type=flags.count(1), metavar="N",
                   help="replace the head with a new one of this size")
    p.add_argument("--num-heads", type=flags.count(1), metavar="N",
                   help="timm state-dict file: attention heads, when the file cannot tell")
    p.add_argument("--image-size", type=flags.count(1), metavar="N",
                   help="timm: input size (the position embedding is resampled)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing preset at DEST")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "prepare", help="re-encode a video dataset for fast loading (short side, keyframes)",
        formatter_class=formatter,
        description=_text(
            "Re-encode every video under SRC to the same relative path under DST (as mmaction2's "
            "resize_videos): the short side brought down to --short-side pixels, a keyframe at "
            "least every --keyframe-interval frames, no B-frames, no audio (H.264; VP9 for "
            ".webm). Every frame FFmpeg presents is kept, in order. Run it once on sources of "
            "high resolution or with few keyframes (Kinetics-style 1080p videos), then train on "
            "DST: each clip then decodes a few small frames instead of many large ones.",
            "Videos already in DST are skipped, so an interrupted run resumes; each output is "
            "checked to decode before it is renamed into place; videos that fail are listed in "
            "DST/prepare_failures.txt (or --failures) and the exit status is 2."),
        epilog="examples:\n  keras-har prepare data/kinetics400 data/kinetics400_320\n"
               "  keras-har prepare data/hmdb51 data/hmdb51_256 --short-side 256 --keyframe-interval 8",
    )
    p.add_argument("src", metavar="SRC", help="the dataset tree to read")
    p.add_argument("dest", metavar="DST", help="where to write the same tree")
    p.add_argument("--short-side", type=flags.count(2), metavar="PX", default=320,
                   help="short side of the outputs; smaller videos are not enlarged (default 320)")
    p.add_argument("--keyframe-interval", type=flags.count(1), metavar="N", default=16,
                   help="a keyframe at least every N frames (default 16)")
    p.add_argument("--workers", type=flags.count(1), metavar="N",
                   help="parallel processes (default: one per CPU)")
    p.add_argument("--failures", metavar="FILE",
                   help="where to list the videos that fail (default DST/prepare_failures.txt)")
    p.set_defaults(func=cmd_prepare)
    return parser


def _text(*paragraphs):
    return "\n\n".join(textwrap.fill(" ".join(p.split()), 79) for p in paragraphs)


def _version():
    from keras_har import __version__

    return __version__


def _recipe_command(argv):
    """`train RECIPE ...` / `pretrain ...`: the recipe parses its own flags
    (--help included); None for any other command line."""
    from keras_har.recipes import PRETRAIN_RECIPE, TRAIN_RECIPES

    if argv[:1] == ["pretrain"]:
        return argparse.Namespace(command="pretrain", recipe=PRETRAIN_RECIPE, recipe_args=argv[1:], func=cmd_train)
    if argv[:1] == ["train"] and len(argv) > 1 and argv[1] in TRAIN_RECIPES:
        return argparse.Namespace(command="train", recipe=argv[1], recipe_args=argv[2:], func=cmd_train)
    return None


def main(argv=None):
    from keras_har.errors import report
    from keras_har.utils.terminal import setup_logging

    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    args = _recipe_command(argv) or build_parser().parse_args(argv)
    setup_logging(training=args.func is cmd_train)
    try:
        return args.func(args)
    except BaseException as e:  # noqa: B036 -- SystemExit passes through
        if isinstance(e, SystemExit):
            raise
        return report(e, prefix=f"keras-har {args.command}")


if __name__ == "__main__":
    sys.exit(main())

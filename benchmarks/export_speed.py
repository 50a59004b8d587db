"""CPU inference speed of exported keras-har models beside transformers.

VideoMAE-B (16 frames of 224 px, 86M parameters, random weights, 400 classes)
is exported from Keras (TensorFlow backend, `keras_har.export`) to ONNX,
OpenVINO, SavedModel and LiteRT and timed at batch 1 and 4 through each
runtime (`keras_har.runtimes`), in float32 and where the runtime offers it in
bfloat16 (OpenVINO's precision hint) or int8 (ONNX Runtime's dynamic
quantization of the weights, LiteRT's dynamic-range quantization). Beside
them, in the same run: transformers' `VideoMAEForVideoClassification` with the
same config, float32 and the whole model cast to bfloat16 (its fastest CPU
setting).

The accuracy cost of a reduced precision is measured against the same
exported model in float32 on `--accuracy-clips` random clips (64 by default):
max |logit difference| and top-1 agreement.

Target (issue 19): the fastest keras-har row >= 1.3x transformers' bfloat16,
at each batch size.

    python benchmarks/export_speed.py                 # VideoMAE-B, ~10 min on 2 cores
    python benchmarks/export_speed.py --quick         # a tiny model, a minute (tests run it)
    python benchmarks/export_speed.py --json out.json
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the backend that exports every format
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_har.utils.import_order import load_torch_before_tensorflow  # noqa: E402

load_torch_before_tensorflow()

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import machine_info  # noqa: E402

TARGET = 1.3
BASE = dict(image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=768,
            num_layers=12, num_heads=12, intermediate_size=3072, num_classes=400)
TINY = dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
            num_layers=2, num_heads=4, intermediate_size=64, num_classes=10)
# (row name, exported format, runtime precision, post-export quantization)
VARIANTS = [
    ("onnxruntime float32", "onnx", None, None),
    ("onnxruntime int8 (dynamic)", "onnx", None, "onnx_int8"),
    ("openvino float32", "openvino", "float32", None),
    ("openvino bfloat16", "openvino", "bfloat16", None),
    ("tensorflow saved_model float32", "saved_model", None, None),
    ("litert float32", "litert", None, None),
    ("litert int8 (dynamic range)", "litert", None, "litert_int8"),
]


def time_calls(fn, budget_s, min_calls=3):
    """Median seconds per call after one warm-up call, for `budget_s` or at
    least `min_calls` calls."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < budget_s:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def keras_model(cfg):
    import keras

    from keras_har.models import VideoMAEBackbone, VideoMAEClassifier

    keras.utils.set_random_seed(0)
    kwargs = {k: v for k, v in cfg.items() if k != "num_classes"}
    backbone = VideoMAEBackbone(num_layers=kwargs.pop("num_layers"), **kwargs)
    model = VideoMAEClassifier(backbone, num_classes=cfg["num_classes"])
    kernel = model.predictions.kernel  # logits with spread: top-1 agreement means something
    kernel.assign(np.random.default_rng(0).normal(0, 0.05, kernel.shape).astype("float32"))
    return model


def export_all(model, cfg, out, variants):
    """{(format, quantization): path} of every variant's file (files already in
    `out` are reused: see --export-dir)."""
    from keras_har import export, runtimes

    paths = {}
    for _, format, _, quant in variants:
        base = out / f"model{export.SUFFIX[format]}" if export.SUFFIX[format] else out / "saved_model"
        if (format, None) not in paths and runtimes.settings_path(base).exists():
            paths[(format, None)] = base
        if (format, None) not in paths:
            t = time.perf_counter()
            export.export_classifier(model, base, format, num_frames=cfg["num_frames"],
                                     sampling_rate=2, image_size=cfg["image_size"])
            print(f"  exported {format} in {time.perf_counter() - t:.0f} s", flush=True)
            paths[(format, None)] = base
        path = out / f"model_{quant}{export.SUFFIX[format]}"
        if quant and (format, quant) not in paths and not runtimes.settings_path(path).exists():
            if quant == "onnx_int8":
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(base), str(path), weight_type=QuantType.QInt8)
            else:  # litert_int8: Keras' LiteRT export with the converter's default optimization
                import tensorflow as tf

                model.export(str(path), format="litert", verbose=False,
                             input_signature=[_spec(cfg)], optimizations=[tf.lite.Optimize.DEFAULT])
            shutil.copy(runtimes.settings_path(base), runtimes.settings_path(path))
        if quant:
            paths[(format, quant)] = path
    return paths


def _spec(cfg):
    import keras

    return keras.InputSpec(shape=(None, cfg["num_frames"], cfg["image_size"], cfg["image_size"], 3),
                           dtype="float32")


def transformers_model(cfg, dtype):
    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    torch.manual_seed(0)
    config = VideoMAEConfig(image_size=cfg["image_size"], patch_size=cfg["patch_size"],
                            num_frames=cfg["num_frames"], tubelet_size=cfg["tubelet_size"],
                            hidden_size=cfg["hidden_size"], num_hidden_layers=cfg["num_layers"],
                            num_attention_heads=cfg["num_heads"],
                            intermediate_size=cfg["intermediate_size"], num_labels=cfg["num_classes"])
    net = VideoMAEForVideoClassification(config).eval()
    return net.to(dtype)


def run(args):
    import torch

    from keras_har import runtimes

    cfg = TINY if args.quick else BASE
    rng = np.random.default_rng(0)

    def clips(n):
        return rng.normal(size=(n, cfg["num_frames"], cfg["image_size"], cfg["image_size"], 3)).astype("float32")

    rows, skipped = [], []
    variants = [v for v in VARIANTS if not args.only or any(o in v[0] for o in args.only)]
    work = pathlib.Path(args.export_dir or tempfile.mkdtemp(prefix="export_speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"exporting VideoMAE-{'tiny' if args.quick else 'B'} from Keras (tensorflow backend) "
              f"into {work}", flush=True)
        paths = export_all(keras_model(cfg), cfg, work, variants)
        check = clips(args.accuracy_clips)
        reference = {}
        for name, format, precision, quant in variants:
            try:
                model = runtimes.load_exported(paths[(format, quant)], precision=precision)
            except runtimes.ExportedModelError as e:
                skipped.append(f"{name}: {e}")
                continue
            row = {"name": name, "runtime": model.runtime}
            for batch in args.batches:
                x = clips(batch)
                row[f"clips_per_s_b{batch}"] = batch / time_calls(lambda: model(x), args.budget)
            logits = np.concatenate([model(check[i : i + 8]) for i in range(0, len(check), 8)])
            if precision in (None, "float32") and quant is None:
                reference[format] = logits
            # Against the same file in float32, else any float32 export of the same weights.
            ref = reference.get(format, next(iter(reference.values()), None))
            if ref is not None:
                row["max_logit_diff"] = float(np.abs(logits - ref).max())
                row["top1_agreement"] = float((logits.argmax(1) == ref.argmax(1)).mean())
            rows.append(row)
            print(f"  {_format_row(row, args.batches)}", flush=True)
    finally:
        if not args.export_dir:
            shutil.rmtree(work, ignore_errors=True)

    for name, dtype in (("transformers float32", torch.float32),
                        ("transformers bfloat16 (model cast)", torch.bfloat16)):
        net = transformers_model(cfg, dtype)
        row = {"name": name, "runtime": f"torch {torch.__version__}"}
        for batch in args.batches:
            x = torch.from_numpy(clips(batch)).permute(0, 1, 4, 2, 3).to(dtype)  # (B, T, 3, H, W)

            def call():
                with torch.inference_mode():
                    net(pixel_values=x)

            row[f"clips_per_s_b{batch}"] = batch / time_calls(call, args.budget)
        rows.append(row)
        print(f"  {_format_row(row, args.batches)}", flush=True)

    reference_row = rows[-1]
    targets = {}
    for batch in args.batches:
        key = f"clips_per_s_b{batch}"
        ours = [r for r in rows if not r["name"].startswith("transformers")]
        best = max(ours, key=lambda r: r[key])
        ratio = best[key] / reference_row[key]
        targets[f"b{batch}"] = {"fastest": best["name"], "ratio_to_transformers_bf16": ratio,
                                "met": ratio >= TARGET}
        for r in rows:
            r[f"x_transformers_bf16_b{batch}"] = r[key] / reference_row[key]
    return {"model": "tiny VideoMAE (--quick)" if args.quick else "VideoMAE-B", "config": cfg,
            "rows": rows, "targets": targets, "target": TARGET, "skipped": skipped,
            "accuracy_clips": args.accuracy_clips}


def _format_row(row, batches):
    speed = "  ".join(f"b{b} {row[f'clips_per_s_b{b}']:7.2f} clips/s" for b in batches)
    accuracy = (f"  max|dlogit| {row['max_logit_diff']:.2e}  top-1 agree {row['top1_agreement']:.3f}"
                if "max_logit_diff" in row else "")
    return f"{row['name']:<36} {speed}{accuracy}"


def report(result, batches):
    info = result["machine"]
    print(f"\n{result['model']} inference on CPU: {info['cpu']} ({info['cores']} cores; "
          f"load average {info['load_before']} before, {info['load_after']} after)")
    header = ["row"] + [f"b{b} clips/s" for b in batches] + [f"b{b} x tf-bf16" for b in batches] + [
        "max |dlogit|", "top-1 agree"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in result["rows"]:
        cells = [r["name"]] + [f"{r[f'clips_per_s_b{b}']:.2f}" for b in batches]
        cells += [f"{r[f'x_transformers_bf16_b{b}']:.2f}" for b in batches]
        cells += ([f"{r['max_logit_diff']:.1e}", f"{r['top1_agreement']:.3f}"]
                  if "max_logit_diff" in r else ["", ""])
        print("| " + " | ".join(cells) + " |")
    for key, t in result["targets"].items():
        status = "MET" if t["met"] else "NOT MET"
        print(f"target {key}: fastest keras-har row ({t['fastest']}) = "
              f"{t['ratio_to_transformers_bf16']:.2f}x transformers bfloat16 "
              f"(target >= {result['target']}x): {status}")
    for s in result["skipped"]:
        print(f"skipped: {s}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model (seconds), for tests")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timed calls per row and batch (default 6; 0.5 with --quick)")
    parser.add_argument("--accuracy-clips", type=int, default=64)
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="only the rows whose name contains one of these (e.g. openvino onnx)")
    parser.add_argument("--export-dir", metavar="DIR",
                        help="keep the exported files here and reuse those already there "
                             "(exporting VideoMAE-B to ONNX takes minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = 0.5 if args.quick else 6.0
    machine = {"cpu": machine_info.cpu_name(), "cores": os.cpu_count(),
               "flags": machine_info.cpu_flags(), "load_before": machine_info.load_average()}
    result = run(args)
    machine["load_after"] = machine_info.load_average()
    result["machine"] = machine
    report(result, args.batches)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

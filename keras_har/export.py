"""Export a keras-har classifier for inference outside Keras.

`export_classifier(model, path, format, ...)` writes the model through Keras'
`Model.export` in one of four formats and, beside it, a small JSON (the
*deployment config*: clip settings, normalisation, label names, input layout)
so that the exported file is usable alone -- `keras_har.runtimes` reads both
without Keras or a training backend.

| format        | file                 | runtime                    | Keras backends that export it |
|---------------|----------------------|----------------------------|-------------------------------|
| `onnx`        | `model.onnx`         | ONNX Runtime               | tensorflow (SavedModel + tf2onnx) |
| `openvino`    | `model.xml` (+ .bin) | OpenVINO                   | tensorflow, torch             |
| `saved_model` | a directory          | TensorFlow / TF Serving    | tensorflow, jax (jax2tf)      |
| `litert`      | `model.tflite`       | LiteRT (ai-edge-litert)    | tensorflow                    |

`NOT_EXPORTING` says why the other pairs fail. Under such a backend
`export_classifier` saves the model as a preset in a temporary directory and
runs the export in a subprocess under one that writes the format
(`exporting_backend`: TensorFlow), on its own: the same weights and graph, so
the same file, only slower to write (the deployment config's `exported_by`
names the backend that wrote it).

The input is `videos`: float32 `(batch, frames, size, size, 3)`, channels
last, already normalised (`(pixel / 255 - mean) / std`); the batch size is
dynamic, frames and size are fixed at export. The output is the logits
`(batch, num_classes)`.
"""

import json
import pathlib

from keras_har.runtimes import settings_path

FORMATS = ("onnx", "openvino", "saved_model", "litert")
KERAS_FORMAT = {"onnx": "onnx", "openvino": "openvino", "saved_model": "tf_saved_model",
                "litert": "litert"}
# The backends that export each format (with a dynamic batch size, verified
# in tests/test_export.py with Keras 3.15) and the package each needs.
EXPORTING_BACKENDS = {
    "onnx": {"tensorflow": "tf2onnx"},
    "openvino": {"tensorflow": "openvino", "torch": "openvino"},
    "saved_model": {"jax": "tensorflow", "tensorflow": "tensorflow"},
    "litert": {"tensorflow": "tensorflow"},
}
# Why the other (format, backend) pairs do not.
NOT_EXPORTING = {
    ("onnx", "jax"): "jax2onnx cannot convert the channels-last patch convolution",
    ("onnx", "torch"): "torch's TorchScript ONNX exporter (Keras' path for a dynamic batch) "
                       "fails on the channels-last patch convolution",
    ("openvino", "jax"): "OpenVINO cannot convert jax2tf's XlaCallModule op",
    ("saved_model", "torch"): "Keras exports a SavedModel from torch only through torch_xla",
    ("litert", "jax"): "Keras has no LiteRT export from JAX",
    ("litert", "torch"): "Keras' torch path needs litert-torch and a fixed batch size",
}
SUFFIX = {"onnx": ".onnx", "openvino": ".xml", "litert": ".tflite", "saved_model": ""}
INPUT_NAME = "videos"
INPUT_LAYOUT = "NTHWC"


class ExportError(ValueError):
    """An unknown format, a bad output path, a missing package, a failed export."""


def exporting_backend(format, backend):
    """The backend that writes `format` for a model on `backend`: `backend`
    itself when it can, else TensorFlow (or the first that can)."""
    exporters = EXPORTING_BACKENDS[format]
    if backend in exporters:
        return backend
    return "tensorflow" if "tensorflow" in exporters else sorted(exporters)[0]


def check_export(format, path, backend):
    """Raise ExportError when `path` does not fit `format` (the message says
    what suffix is needed) or a package the export needs under `backend`
    (directly, or through `exporting_backend`) is missing."""
    if format not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    writer = exporting_backend(format, backend)
    suffix = pathlib.Path(path).suffix
    if format == "saved_model":
        if suffix in (".onnx", ".xml", ".tflite"):
            raise ExportError(f"{path}: a SavedModel is a directory; give a path without the {suffix}")
    elif suffix != SUFFIX[format]:
        raise ExportError(f"{path}: a {format} file must end in {SUFFIX[format]}")
    import importlib.util

    for package in dict.fromkeys([writer, EXPORTING_BACKENDS[format][writer]]):
        if importlib.util.find_spec(package) is None:
            raise ExportError(f"exporting {format} (under the {writer} backend) needs the {package} "
                              f"package (pip install 'keras-har[export]')")


def preprocessing_constants(model, num_frames, sampling_rate, image_size):
    """The input preprocessing of `model` as a deployment needs it: clip
    settings (from the caller: flags / the run / the model) and the model's
    normalisation. The one place these constants are read from a model."""
    return {
        "num_frames": int(num_frames),
        "sampling_rate": int(sampling_rate),
        "image_size": int(image_size),
        "mean": [float(v) for v in model.image_mean],
        "std": [float(v) for v in model.image_std],
        "rescale": 1 / 255,
    }


def deployment_config(model, format, preprocessing, filename):
    """The JSON written beside an exported model."""
    from keras_har import __version__

    import keras

    p = preprocessing
    return {
        "format": format,
        "model_file": filename,
        "architecture": type(model).__name__,
        "input": {
            "name": INPUT_NAME,
            "layout": INPUT_LAYOUT,
            "shape": [None, p["num_frames"], p["image_size"], p["image_size"], 3],
            "dtype": "float32",
            "description": "RGB frames, (pixel * rescale - mean) / std, channels last",
        },
        "output": {"name": "logits", "shape": [None, model.num_classes], "dtype": "float32"},
        "preprocessing": p,
        "labels": model.class_names,
        "exported_by": {"keras_har": __version__, "keras": keras.__version__,
                        "backend": keras.backend.backend()},
    }


def export_classifier(model, path, format, *, num_frames, sampling_rate, image_size,
                      verbose=False):
    """Export `model` to `path` in `format` (see the module table) with its
    deployment config beside it; returns the config's path.

    The input signature fixes frames and image size and leaves the batch
    dynamic. Under a backend that cannot write `format` the export runs in a
    subprocess under one that can (see the module docstring). Raises
    ExportError for a bad path or format, a missing package, a failed export.
    """
    import keras

    backend = keras.backend.backend()
    check_export(format, path, backend)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = exporting_backend(format, backend)
    if writer != backend:
        return _export_in_subprocess(model, path, format, writer, num_frames=num_frames,
                                     sampling_rate=sampling_rate, image_size=image_size)
    preprocessing = preprocessing_constants(model, num_frames, sampling_rate, image_size)
    spec = keras.InputSpec(shape=(None, num_frames, image_size, image_size, 3), dtype="float32",
                           name=INPUT_NAME)
    kwargs = {}
    if format == "saved_model" and keras.backend.backend() == "jax":
        kwargs["is_static"] = True  # inference only: no state updates
    # One call first: a model's first call may differ from the next ones
    # (lazily built state), which torch's tracer rejects as an unstable trace.
    model(keras.ops.zeros((1, num_frames, image_size, image_size, 3)), training=False)
    trainable = model.trainable
    model.trainable = False  # frozen weights: torch's tracer can fold them as constants
    try:
        if EXPORTING_BACKENDS[format][keras.backend.backend()] == "tf2onnx":
            _onnx_through_saved_model(model, path, spec, verbose)
        else:
            model.export(str(path), format=KERAS_FORMAT[format], verbose=verbose,
                         input_signature=[spec], **kwargs)
    finally:
        model.trainable = trainable
    config = deployment_config(model, format, preprocessing, path.name)
    if format == "openvino":  # torch's tracer names the input "input"
        import openvino as ov

        config["input"]["name"] = ov.Core().read_model(str(path)).inputs[0].get_any_name()
    where = settings_path(path)
    where.write_text(json.dumps(config, indent=2) + "\n")
    return where


def _export_in_subprocess(model, path, format, backend, **clip):
    """`export_classifier` of `model`'s preset in a Python process under
    KERAS_BACKEND=`backend`; nothing is left at `path` when it fails."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        preset = pathlib.Path(tmp) / "preset"
        model.save_to_preset(str(preset))
        settings = {"preset": str(preset), "path": str(path), "format": format, **clip}
        env = {**os.environ, "KERAS_BACKEND": backend}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        done = subprocess.run([sys.executable, "-m", "keras_har.export", json.dumps(settings)],
                              env=env, capture_output=True, text=True)
    if done.returncode != 0:
        _remove_export(path)
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise ExportError(f"{path}: exporting {format} under KERAS_BACKEND={backend} failed: {why}")
    return settings_path(path)


def _remove_export(path):
    import shutil

    for p in (path, path.with_suffix(".bin") if path.suffix == ".xml" else None, settings_path(path)):
        if p is None or not p.exists():
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _export_preset(settings):
    """The subprocess's side of `_export_in_subprocess`."""
    from keras_har.models.auto import load_classifier

    model = load_classifier(settings.pop("preset"))
    export_classifier(model, settings.pop("path"), settings.pop("format"), **settings)


def _onnx_through_saved_model(model, path, spec, verbose):
    """ONNX from the TensorFlow backend: `Model.export` to a SavedModel, then
    tf2onnx on the loaded graph. (Keras' own `format="onnx"` hands tf2onnx the
    traced function, whose captured constant tensors -- position tables --
    come out as unfed ONNX inputs with TensorFlow 2.21 / tf2onnx 1.17.)"""
    import tempfile

    from tf2onnx import convert, tf_loader

    _teach_tf2onnx_erfc()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        saved = pathlib.Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=verbose, input_signature=[spec])
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            str(saved), None, None, signatures=["serve"], return_tensors_to_rename=True)
        convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs,
                               tensors_to_rename=renames, output_path=str(path))


def _teach_tf2onnx_erfc():
    """Register an ONNX conversion of TensorFlow's Erfc with tf2onnx (1.17 has
    none; TensorFlow 2.21 writes the exact GELU with it): erfc(x) = 1 + erf(-x)."""
    import numpy as np
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    if any("Erfc" in ops for opset in tf_op.get_opsets().values() for ops in opset):
        return

    @tf_op("Erfc")
    class Erfc:  # noqa: F841 (registered by the decorator)
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
            ctx.insert_new_node_on_input(node, "Neg", node.input[0])
            node.type = "Erf"
            one = ctx.make_const(utils.make_name("one"), np.array(1, dtype=dtype))
            ctx.insert_new_node_on_output("Add", node.output[0], inputs=[node.output[0], one.output[0]])


if __name__ == "__main__":
    import os
    import sys

    if os.environ.get("KERAS_BACKEND") == "torch":
        from keras_har.utils.import_order import load_torch_before_tensorflow

        load_torch_before_tensorflow()
    _export_preset(json.loads(sys.argv[1]))

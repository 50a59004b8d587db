"""Run an exported keras-har model without Keras or a training backend.

`load_exported(path)` picks the runtime from what `path` is:

* `*.onnx` -> ONNX Runtime,
* `*.xml` (OpenVINO IR, with its `.bin`) -> OpenVINO,
* a SavedModel directory -> TensorFlow (`tf.saved_model.load`),
* `*.tflite` -> LiteRT (`ai_edge_litert.interpreter`),

and reads the deployment config `keras_har.export` wrote beside it (clip
settings, normalisation, labels). The returned `ExportedClassifier` maps a
float32 batch `(B, T, S, S, 3)` to logits `(B, C)`.

This module imports numpy and the one runtime it uses, nothing else.
"""

import json
import pathlib

import numpy as np

SETTINGS_NAME = "keras_har.json"  # the deployment config inside a SavedModel directory
RUNTIMES = ("onnxruntime", "openvino", "tensorflow", "litert")
OPENVINO_PRECISION = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorflow": "tensorflow",
            "litert": "ai-edge-litert"}


class ExportedModelError(ValueError):
    """An exported model that cannot be read or run; the message names the path."""


def runtime_for(path):
    """The runtime that runs the exported model at `path` (from its suffix, or
    a directory holding saved_model.pb)."""
    path = pathlib.Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "tensorflow"
        raise ExportedModelError(f"{path}: a directory without saved_model.pb is not a SavedModel")
    suffix = path.suffix.lower()
    runtime = {".onnx": "onnxruntime", ".xml": "openvino", ".tflite": "litert"}.get(suffix)
    if runtime is None:
        raise ExportedModelError(
            f"{path}: not an exported model (expected .onnx, OpenVINO .xml, .tflite or a "
            "SavedModel directory)"
        )
    if not path.is_file():
        raise ExportedModelError(f"{path}: no such file")
    return runtime


def settings_path(path):
    """Where the deployment config of the exported model at `path` lives:
    `model.onnx` -> `model.onnx.json`; a SavedModel directory -> `DIR/keras_har.json`."""
    path = pathlib.Path(path)
    if path.is_dir() or path.suffix == "":
        return path / SETTINGS_NAME
    return path.with_name(path.name + ".json")


def read_settings(path):
    """The deployment config beside the exported model at `path`."""
    where = settings_path(path)
    if not where.exists():
        raise ExportedModelError(f"{where}: missing (keras-har export writes it beside the model)")
    try:
        config = json.loads(where.read_text())
        for key in ("num_frames", "sampling_rate", "image_size", "mean", "std"):
            config["preprocessing"][key]
        config["labels"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ExportedModelError(f"{where}: not a keras-har deployment config ({e!r})") from None
    return config


class ExportedClassifier:
    """An exported model and its deployment config.

    Attributes: `runtime` (one of RUNTIMES), `config` (the JSON dict),
    `class_names`, `num_frames`, `sampling_rate`, `image_size`, `image_mean`,
    `image_std`. Call it on a float32 batch `(B, T, S, S, 3)` for logits.
    """

    def __init__(self, path, runtime=None, threads=None, precision=None):
        self.path = pathlib.Path(path)
        self.runtime = runtime or runtime_for(self.path)
        if self.runtime not in RUNTIMES:
            raise ExportedModelError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        self.config = read_settings(self.path)
        p = self.config["preprocessing"]
        self.num_frames, self.sampling_rate, self.image_size = (
            int(p["num_frames"]), int(p["sampling_rate"]), int(p["image_size"]))
        self.image_mean, self.image_std = tuple(p["mean"]), tuple(p["std"])
        self.class_names = list(self.config["labels"])
        if precision not in (None, "float32") and self.runtime != "openvino":
            raise ExportedModelError(f"{self.path}: {self.runtime} runs the file's own precision; "
                                     f"precision={precision!r} is for OpenVINO")
        self.precision = precision or "float32"
        try:
            self._run = getattr(self, f"_load_{self.runtime}")(threads)
        except ImportError as e:
            raise ExportedModelError(
                f"{self.path}: running it needs the {PACKAGES[self.runtime]} package ({e})"
            ) from None
        except Exception as e:
            raise ExportedModelError(f"{self.path}: {self.runtime} cannot load it ({e})") from None

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        expected = (self.num_frames, self.image_size, self.image_size, 3)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{self.path}: expects a batch (B, {', '.join(map(str, expected))}), "
                             f"got shape {x.shape}")
        return np.asarray(self._run(x), dtype=np.float32)

    # One loader per runtime: each returns a function batch -> logits.

    def _load_onnxruntime(self, threads):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]

    def _load_openvino(self, threads):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        # OpenVINO computes in bf16 by default on CPUs that have it: ask for
        # what was requested (f32 by default, the exported model's precision).
        config["INFERENCE_PRECISION_HINT"] = OPENVINO_PRECISION[self.precision]
        compiled = core.compile_model(str(self.path), "CPU", config)
        request = compiled.create_infer_request()
        return lambda x: request.infer({0: x})[compiled.output(0)].copy()

    def _load_tensorflow(self, threads):
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        loaded = tf.saved_model.load(str(self.path))  # kept alive by the closure: it owns the weights
        return lambda x: loaded.serve(tf.constant(x)).numpy()

    def _load_litert(self, threads):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        runner = interpreter.get_signature_runner()
        (name,) = runner.get_input_details()

        def run(x):
            (out,) = runner(**{name: x}).values()
            return out

        return run


def load_exported(path, runtime=None, threads=None, precision=None):
    """An `ExportedClassifier` for the model at `path`; see the module docstring.

    `threads`: intra-op threads (default: the runtime's). `precision`:
    "float32" (default) or, with OpenVINO, "bfloat16" / "float16" (its
    inference precision hint; bf16 is fast on CPUs with AMX / AVX512-BF16).
    """
    return ExportedClassifier(path, runtime=runtime, threads=threads, precision=precision)


def view_logits(model, x):
    """Logits `(B, C)` of a batch through an exported model; views `(B, V, ...)`
    are averaged (keras_har.evaluation.view_logits for exported models)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 6:
        batch, views = x.shape[:2]
        logits = model(x.reshape((batch * views,) + x.shape[2:]))
        return logits.reshape(batch, views, -1).mean(axis=1)
    return model(x)

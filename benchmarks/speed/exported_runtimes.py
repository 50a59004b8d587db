"""keras-har's VideoMAE exported from Keras and run by each deployment runtime
(`ExportedRuntime`, the rows with impl `exported`).

The model is the `keras_har` rows' VideoMAE (same config, 51 classes, random
weights; the head re-drawn with a spread so that top-1 agreement means
something), exported by `keras_har.export` under the tensorflow backend (the
one that exports every format; the rows' `backend`) and loaded by
`keras_har.runtimes` -- what `keras-har predict --exported` runs. A row's
`variant` is the runtime, its `dtype` the precision:

- onnxruntime: float32, int8 (ONNX Runtime's dynamic quantization of the weights);
- openvino: float32, bfloat16 (OpenVINO's inference precision hint);
- tf_saved_model: float32 (TensorFlow);
- litert: float32, int8 (the LiteRT converter's dynamic-range quantization).

The exported files go to `--export-dir` (reused when already there: exporting
VideoMAE-B to ONNX takes minutes), else to a temporary directory removed after
the run. Each file is exported by the first job that needs it.

Accuracy cost: each bfloat16 / int8 row runs `--accuracy-clips` random clips
(seed 0) and compares its logits with float32's on the same clips (the first
float32 exported row of the run computes them and leaves them in the export
directory for the others): `max_logit_diff` (max |dlogit|) and
`top1_agreement`. The other float32 rows are checked against them on the
first 8 clips (float32 exports agree with Keras to 1e-7: tests/test_export.py).
"""

import os
import pathlib
import shutil
import tempfile

from speed.runner import Runner

# (variant, dtype) -> (exported format, runtime precision, post-export quantization)
VARIANTS = {
    ("onnxruntime", "float32"): ("onnx", None, None),
    ("onnxruntime", "int8"): ("onnx", None, "onnx_int8"),
    ("openvino", "float32"): ("openvino", "float32", None),
    ("openvino", "bfloat16"): ("openvino", "bfloat16", None),
    ("tf_saved_model", "float32"): ("saved_model", None, None),
    ("litert", "float32"): ("litert", None, None),
    ("litert", "int8"): ("litert", None, "litert_int8"),
}
RUNTIME = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tf_saved_model": "tensorflow",
           "litert": "ai_edge_litert"}  # variant -> the module that runs it
ACCURACY_BATCH = 8
FLOAT32_CHECK_CLIPS = 8  # float32 exports after the reference: checked on this many of the clips


def available_variants():
    """The variants whose runtime is installed (checked without importing it)."""
    import importlib.util

    return [v for v in dict.fromkeys(v for v, _ in VARIANTS) if importlib.util.find_spec(RUNTIME[v])]


class ExportedRuntime(Runner):
    """One exported file run by its runtime, in a tensorflow-backend worker."""

    impls = ("exported",)
    _temp_dirs = []  # driver side: export directories made for this run, removed by cleanup()

    def __init__(self, job):
        self.job = job
        self.variant, self.dtype = job["variant"], job["dtype"]
        self.format, self.precision, self.quant = VARIANTS[(self.variant, self.dtype)]
        self.export_dir = pathlib.Path(job["export_dir"])

    @classmethod
    def from_job(cls, job):
        return cls(job)

    @classmethod
    def make_jobs(cls, model, args, common):
        """VideoMAE only, when the tensorflow backend is in the run (it makes
        the exports): one job per `--exported` runtime and precision in
        `--dtypes` (float32, bfloat16, int8), inference only."""
        if model != "videomae" or "tensorflow" not in args.backends or args.exported == "none":
            return []
        installed = available_variants()
        wanted = installed if args.exported == "all" else [v.strip() for v in args.exported.split(",")]
        for v in wanted:
            if v not in RUNTIME:
                raise SystemExit(f"--exported: unknown runtime {v!r} (known: {', '.join(RUNTIME)})")
            if v not in installed:
                raise SystemExit(f"--exported {v}: its runtime ({RUNTIME[v]}) is not installed")
        if args.export_dir:
            export_dir = pathlib.Path(args.export_dir)
            export_dir.mkdir(parents=True, exist_ok=True)
        else:
            export_dir = pathlib.Path(tempfile.mkdtemp(prefix="backend_speed_exports-"))
            cls._temp_dirs.append(export_dir)
        # This run's float32 logits on the accuracy clips (a name per run: never a stale file).
        reference = export_dir / f"reference_logits-{'quick' if args.quick else 'full'}-{os.getpid()}.npy"
        jobs = []
        for variant in wanted:
            for (v, dtype) in VARIANTS:
                if v == variant and dtype in args.dtypes:
                    jobs.append(dict(common, model=model, impl="exported", backend="tensorflow",
                                     variant=variant, dtype=dtype, train=False, export_dir=str(export_dir),
                                     accuracy_clips=args.accuracy_clips, reference_logits=str(reference)))
        return jobs

    @classmethod
    def preload_allocator(cls, job):
        """OpenVINO 2026.4 crashes under a preloaded tcmalloc (measured: SIGSEGV /
        "free(): invalid size" loading VideoMAE-B): its workers use the system malloc."""
        return job["variant"] != "openvino"

    @classmethod
    def cleanup(cls, args):
        for d in cls._temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        cls._temp_dirs.clear()

    @classmethod
    def matmul_kernels(cls, row):
        return row["variant"], ""

    def device(self):
        return "cpu"

    def framework_version(self):
        import importlib

        mod = importlib.import_module(RUNTIME[self.variant])
        version = getattr(mod, "__version__", None) or getattr(mod, "get_version", lambda: "?")()
        return f"{RUNTIME[self.variant]} {version} (exported by keras-har from tensorflow)"

    def matmul_peak(self, dtype, size):
        return None  # a runtime runs a model file, not a matmul: the rows show no peak fraction

    # -- exporting (in the worker, with the tensorflow backend) ----------------------------------

    def _model(self):
        if getattr(self, "_keras_model", None) is None:
            self._keras_model = exportable_videomae(self.cfg)
        return self._keras_model

    def _file(self, quant):
        """The exported file for this job's format (and quantization), exported if missing."""
        from keras_har import export, runtimes

        suffix = export.SUFFIX[self.format]
        base = self.export_dir / (f"model{suffix}" if suffix else "saved_model")
        if not runtimes.settings_path(base).exists():
            export.export_classifier(self._model(), base, self.format, num_frames=self.cfg["num_frames"],
                                     sampling_rate=2, image_size=self.cfg["image_size"])
        if not quant:
            return base
        path = self.export_dir / f"model_{quant}{suffix}"
        if not runtimes.settings_path(path).exists():
            if quant == "onnx_int8":
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(base), str(path), weight_type=QuantType.QInt8)
            else:  # litert_int8: Keras' LiteRT export with the converter's default optimization
                import keras
                import tensorflow as tf

                spec = keras.InputSpec(shape=(None, self.cfg["num_frames"], self.cfg["image_size"],
                                              self.cfg["image_size"], 3), dtype="float32")
                self._model().export(str(path), format="litert", verbose=False, input_signature=[spec],
                                     optimizations=[tf.lite.Optimize.DEFAULT])
            shutil.copy(runtimes.settings_path(base), runtimes.settings_path(path))
        return path

    def build(self, model, cfg, dtype):
        from keras_har import runtimes

        self.cfg = cfg
        self.path = self._file(self.quant)
        self.net = runtimes.load_exported(self.path, precision=self.precision)
        counted = self.export_dir / "params.txt"  # the Keras model's count, kept beside the exports
        if not counted.exists():
            counted.write_text(f"{self._model().count_params()}\n")
        self._keras_model = None  # the exports are written: free the Keras model
        return int(counted.read_text())

    def compile(self, training):
        if training:
            raise NotImplementedError("an exported model is for inference")

    @staticmethod
    def videos(cfg, batch):
        from speed.keras_models import KerasImpl

        return KerasImpl.videos(cfg, batch)

    def inference_fn(self, videos):
        net = self.net
        return lambda: net(videos)

    # -- accuracy --------------------------------------------------------------------------------

    def _logits(self, net, clips):
        import numpy as np

        return np.concatenate([net(clips[i:i + ACCURACY_BATCH]) for i in range(0, len(clips), ACCURACY_BATCH)])

    def extra_fields(self, cfg):
        """float32: this run's reference logits (the first float32 row makes
        them); bfloat16 / int8: the cost against them."""
        import numpy as np

        from keras_har import runtimes

        n = int(self.job["accuracy_clips"])
        if n <= 0:
            return {}
        reference = pathlib.Path(self.job["reference_logits"])
        if self.dtype == "float32" and reference.exists():
            n = min(n, FLOAT32_CHECK_CLIPS)  # another float32 export: a short check that they agree
        # Seeded: the first clips are the same for every n, so a short check compares like with like.
        clips = np.random.default_rng(0).standard_normal(
            (n, cfg["num_frames"], cfg["image_size"], cfg["image_size"], 3)).astype("float32")
        if not reference.exists():  # this row is float32, or no float32 row ran before it
            source = self.variant if self.dtype == "float32" else f"{self.variant} float32"
            net = self.net if self.dtype == "float32" else runtimes.load_exported(self._file(None))
            ref = self._logits(net, clips)
            tmp = reference.with_suffix(".tmp.npy")
            np.save(tmp, ref)
            os.replace(tmp, reference)
            reference.with_suffix(".txt").write_text(source + "\n")
            if self.dtype == "float32":
                return {"accuracy_reference": True, "accuracy_clips": n}
        ref = np.load(reference)[:n]
        logits = self._logits(self.net, clips)
        return {"accuracy_clips": n, "accuracy_against": f"{reference.with_suffix('.txt').read_text().strip()}",
                "max_logit_diff": float(np.abs(logits - ref).max()),
                "top1_agreement": float((logits.argmax(1) == ref.argmax(1)).mean())}


def exportable_videomae(cfg):
    """The keras_har rows' VideoMAE (float32, seed 0) with a head whose logits
    spread (random N(0, 0.05) kernel), so top-1 agreement means something."""
    import keras
    import numpy as np

    from speed.keras_models import videomae_classifier

    keras.utils.set_random_seed(0)
    model = videomae_classifier(cfg, "float32")
    kernel = model.predictions.kernel
    kernel.assign(np.random.default_rng(0).normal(0, 0.05, kernel.shape).astype("float32"))
    return model



def prepare_exports(export_dir, quick=False):
    """Exports every variant into `export_dir` ahead of a run (one Keras model
    for all), so that no timed worker exports (nor holds a Keras model's
    memory):

        cd benchmarks && KERAS_BACKEND=tensorflow python -c \\
            "from speed.exported_runtimes import prepare_exports; prepare_exports('/tmp/exports')"
    """
    import time

    from speed.configs import FULL_CONFIGS, QUICK_CONFIGS

    cfg = (QUICK_CONFIGS if quick else FULL_CONFIGS)["videomae"]
    model = None
    for variant, dtype in VARIANTS:
        if variant not in available_variants():
            print(f"{variant}: runtime not installed, skipped", flush=True)
            continue
        runner = ExportedRuntime(dict(variant=variant, dtype=dtype, export_dir=str(export_dir)))
        runner.cfg, runner._keras_model = cfg, model
        start = time.perf_counter()
        path = runner._file(runner.quant)
        model = runner._keras_model
        print(f"{variant} {dtype}: {path} ({time.perf_counter() - start:.0f} s)", flush=True)
    counted = pathlib.Path(export_dir) / "params.txt"
    if not counted.exists():
        counted.write_text(f"{(model or exportable_videomae(cfg)).count_params()}\n")

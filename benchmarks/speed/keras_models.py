"""keras-har's models under the worker's Keras backend (`KerasImpl`, the rows
with impl `keras_har`), and the `+einsum_attention` experiment."""

from speed.configs import DEFAULT_VARIANT, NUM_CLASSES
from speed.runner import Runner
from speed.timing import matmul_gflops


class KerasImpl(Runner):
    """Builds and times a keras-har model under the process's Keras backend."""

    impls = ("keras_har",)

    def __init__(self, backend, variant, optimizer="adamw"):
        self.backend, self.variant, self.optimizer = backend, variant, optimizer
        if backend == "torch" or variant.startswith("compile"):
            from keras_har.utils.import_order import load_torch_before_tensorflow

            load_torch_before_tensorflow()
        import keras

        self.keras = keras
        if "einsum_attention" in variant:
            use_einsum_attention()

    @classmethod
    def from_job(cls, job):
        return cls(job["backend"], job["variant"], job.get("optimizer", "adamw"))

    @classmethod
    def make_jobs(cls, model, args, common):
        """One job per backend, variant (the default and `--variants`) and dtype."""
        extra = {}
        for item in filter(None, args.variants.split(",")):
            backend, variant = item.split(":")
            extra.setdefault(backend, []).append(variant)
        jobs = []
        for backend in args.backends:
            variants = [DEFAULT_VARIANT[backend]] + [v for v in extra.get(backend, [])
                                                      if v != DEFAULT_VARIANT[backend]]
            for variant in variants:
                for dtype in [d for d in ("float32", "mixed_bfloat16") if d in args.dtypes]:
                    jobs.append(dict(common, model=model, impl="keras_har", backend=backend,
                                     variant=variant, dtype=dtype))
        return jobs

    @classmethod
    def matmul_kernels(cls, row):
        """The backend's kernels; tensorflow's `xla` and `graph` (oneDNN) apart."""
        return row["backend"], row["variant"] if row["backend"] == "tensorflow" else ""

    @property
    def optimizer_name(self):
        return self.optimizer

    @property
    def jit(self):
        return self.variant.split("+")[0] in ("xla", "compile")

    def device(self):
        if self.backend == "jax":
            import jax

            dev = jax.devices()[0]
            return f"{dev.platform}:{getattr(dev, 'device_kind', '')}"
        if self.backend == "torch":
            import torch

            return "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"gpu:{gpus[0].name}" if gpus else "cpu"

    def device_peak_mb(self):
        try:
            if self.backend == "jax":
                import jax

                dev = jax.devices()[0]
                if dev.platform == "cpu":
                    return None
                return (dev.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20
            if self.backend == "torch":
                import torch

                return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
            import tensorflow as tf

            if not tf.config.list_physical_devices("GPU"):
                return None
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        except Exception:  # noqa: BLE001 - a statistic, not a result
            return None

    def framework_version(self):
        import importlib

        mod = importlib.import_module(self.backend)
        return f"keras {self.keras.__version__}, {self.backend} {mod.__version__}"

    def matmul_peak(self, dtype, size):
        """Compiled the way the rows are (XLA for jax and tensorflow `xla`)."""
        import numpy as np

        a = np.random.default_rng(0).standard_normal((size, size)).astype("float32")
        if self.backend == "jax":
            import jax
            import jax.numpy as jnp

            x = jnp.asarray(a, dtype=dtype)
            f = jax.jit(lambda u, v: u @ v)
            run, sync = (lambda: f(x, x).block_until_ready()), (lambda: None)
        elif self.backend == "torch":
            import torch

            dev = "cuda" if torch.cuda.is_available() else "cpu"
            x = torch.as_tensor(a, device=dev).to(getattr(torch, dtype))

            def run():
                with torch.inference_mode():
                    torch.mm(x, x)

            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        else:
            import tensorflow as tf

            x = tf.cast(tf.constant(a), dtype)
            f = tf.function(lambda u: tf.reduce_sum(tf.cast(tf.linalg.matmul(u, u)[:1, :1], "float32")),
                            jit_compile=self.jit)
            run, sync = (lambda: f(x).numpy()), (lambda: None)
        return matmul_gflops(run, sync, size)

    def build(self, model, cfg, dtype):
        policy = dtype  # "float32" or "mixed_bfloat16"
        if model == "videomae":
            net = videomae_classifier(cfg, policy)
        else:
            import keras_hub

            from keras_har.models import MeanPooledViTClassifier

            backbone = keras_hub.models.ViTBackbone(
                image_shape=(cfg["image_size"], cfg["image_size"], 3), patch_size=cfg["patch_size"],
                num_layers=cfg["num_layers"], num_heads=cfg["num_heads"], hidden_dim=cfg["hidden_size"],
                mlp_dim=cfg["intermediate_size"], layer_norm_epsilon=1e-6, dtype=policy,
            )
            net = MeanPooledViTClassifier(backbone=backbone, num_classes=NUM_CLASSES)
        self.net, self.model = net, model
        return net.count_params()

    def _optimizer(self, net):
        """The training steps' optimizer (the same for fine-tuning and pre-training)."""
        if self.optimizer == "grouped":
            from keras_har.training.optimizers import build_adamw

            return build_adamw(net, learning_rate=1e-4, weight_decay=0.05, clip_norm=1.0)
        return self.keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.05, global_clipnorm=1.0)

    def compile(self, training):
        keras = self.keras
        if training:
            # No metrics (the references compute none): the step timed is the loss and the update.
            self.net.compile(optimizer=self._optimizer(self.net),
                             loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=None,
                             jit_compile=self.jit)
        else:
            self.net.compile(metrics=None, jit_compile=self.jit)

    def inference_fn(self, videos):
        net = self.net
        net.make_predict_function()  # the compiled predict path, built once
        return lambda: net.predict_on_batch(videos)

    def train_fn(self, videos, labels):
        net = self.net
        return lambda: net.train_on_batch(videos, labels)

    def pretrain_fn(self, cfg, videos, bool_masked_pos):
        """`VideoMAEPretrainer` on the classifier's backbone (the same encoder
        and dtype policy; the decoder of `cfg`, tube masking at the mask's
        ratio), `train_on_batch` with its own loss and the training steps'
        optimizer."""
        if self.model != "videomae":
            raise NotImplementedError(f"no pre-training step for {self.model!r}")
        from keras_har.models import VideoMAEPretrainer
        from speed.configs import PRETRAIN_MASK_RATIO, PRETRAIN_MASKING

        net = VideoMAEPretrainer(
            self.net.backbone, decoder_hidden_dim=cfg["decoder_hidden_size"],
            decoder_num_layers=cfg["decoder_num_hidden_layers"],
            decoder_num_heads=cfg["decoder_num_attention_heads"],
            decoder_mlp_dim=cfg["decoder_intermediate_size"],
            mask_ratio=PRETRAIN_MASK_RATIO, masking=PRETRAIN_MASKING,
        )
        if net.check_mask(bool_masked_pos)[1] != net.num_masked:  # train_on_batch runs its own graph
            raise ValueError(f"the benchmark's masks do not hide {net.num_masked} tokens each")
        net.compile(optimizer=self._optimizer(net), jit_compile=self.jit)
        self.pretrainer = net
        inputs = {"videos": videos, "bool_masked_pos": bool_masked_pos}
        return lambda: net.train_on_batch(inputs)

    @staticmethod
    def videos(cfg, batch):
        import numpy as np

        size = cfg["image_size"]
        return np.random.default_rng(batch).standard_normal(
            (batch, cfg["num_frames"], size, size, 3)).astype("float32")


def videomae_classifier(cfg, policy):
    """keras-har's VideoMAE classifier at `cfg` (transformers' VideoMAEConfig
    conventions) under the dtype policy `policy`; also what the exported rows export."""
    from keras_har.models import VideoMAEBackbone, VideoMAEClassifier

    backbone = VideoMAEBackbone(
        image_size=cfg["image_size"], patch_size=cfg["patch_size"], num_frames=cfg["num_frames"],
        tubelet_size=cfg["tubelet_size"], hidden_dim=cfg["hidden_size"],
        num_layers=cfg["num_layers"], num_heads=cfg["num_heads"],
        mlp_dim=cfg["intermediate_size"], activation="gelu", use_qv_bias=True,
        layer_norm_epsilon=1e-12, use_mean_pooling=True, dtype=policy,
    )
    return VideoMAEClassifier(backbone, num_classes=NUM_CLASSES)


def use_einsum_attention():
    """Experiment (variant suffix `+einsum_attention`): in this worker process,
    `keras.ops.dot_product_attention` -- the op VideoMAE's attention runs
    through -- becomes two einsums and a softmax in the compute dtype (the
    model's code is untouched; calls with a bias, mask, causal flag or other
    options still go to the fused op). Faster under jax (whose
    `jax.nn.dot_product_attention` vmaps over head groups and scales the
    logits) and tensorflow `graph` in bfloat16 (no float32 round trip of the
    logits); slower under torch (no fused SDPA kernel), so not the model's code.
    keras-hub's ViT is not affected (keras.layers.MultiHeadAttention calls
    Keras' internal ops). Returns the fused op it replaced."""
    from keras import ops

    fused = ops.dot_product_attention

    def einsum_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False, **options):
        if bias is not None or mask is not None or is_causal or options:
            return fused(query, key, value, bias=bias, mask=mask, scale=scale, is_causal=is_causal, **options)
        scale = ops.shape(query)[-1] ** -0.5 if scale is None else scale
        scores = ops.einsum("bqhd,bkhd->bhqk", query * ops.cast(scale, query.dtype), key)
        return ops.einsum("bhqk,bkhd->bqhd", ops.softmax(scores, axis=-1), value)

    ops.dot_product_attention = einsum_attention
    return fused

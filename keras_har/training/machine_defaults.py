"""Defaults that fit the machine a run is on, for the flags a user left unset.

- Loader workers (`--workers`): on a machine with an accelerator, every core
  this process may run on (`os.sched_getaffinity`) but `RESERVED_CORES`, which
  the training process keeps for itself (feeding the device, the loader's
  consumer); at least `CPU_WORKERS`. Without an accelerator the model's own
  computation needs the cores, so `CPU_WORKERS`. The workers are spawned
  processes that import neither Keras nor a backend, so they never touch the
  accelerator (no CUDA context, no device memory).
- Mixed precision (`--mixed-precision`): `mixed_bfloat16` (bfloat16 compute,
  float32 weights, losses in float32) where the accelerator computes in
  bfloat16 (a TPU, an NVIDIA GPU of compute capability 8.0 or later); float32
  elsewhere, a CPU among them.

A CPU run therefore gets what it always got: 2 workers, float32. Batches do
not depend on the number of workers (every random draw is seeded per video).

The accelerator is asked of the Keras backend, which starts it. JAX then
takes 75% of the GPU's memory for itself at once; run one backend per process,
and to share a GPU with another process (a PyTorch job, a second JAX one) set
`XLA_PYTHON_CLIENT_MEM_FRACTION` (e.g. 0.45) or `XLA_PYTHON_CLIENT_PREALLOCATE=false`
in the environment before the process starts.
"""

import logging
import os

logger = logging.getLogger("keras_har")

CPU_WORKERS = 2
RESERVED_CORES = 2
BF16_COMPUTE_CAPABILITY = (8, 0)  # NVIDIA Ampere and later


def available_cores():
    """The cores this process may run on (its CPU affinity; `os.cpu_count()`
    where the platform has no affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _capability(value):
    """"9.0" / (9, 0) -> (9, 0)."""
    if isinstance(value, str):
        value = value.split(".")
    return tuple(int(v) for v in value)[:2]


def accelerator():
    """`{"platform": "gpu" | "tpu", "name": str, "bfloat16": bool}` for the
    device the Keras backend computes on, or None on a CPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        from keras_har.training.distribution import initialize_multi_host

        initialize_multi_host()  # before anything starts JAX's backend
        import jax

        device = jax.devices()[0]
        if device.platform == "tpu":
            return {"platform": "tpu", "name": device.device_kind, "bfloat16": True}
        if device.platform != "gpu":
            return None
        capability = getattr(device, "compute_capability", None)
        bf16 = capability is not None and _capability(capability) >= BF16_COMPUTE_CAPABILITY
        return {"platform": "gpu", "name": device.device_kind, "bfloat16": bf16}
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        return {"platform": "gpu", "name": torch.cuda.get_device_name(0),
                "bfloat16": _capability(torch.cuda.get_device_capability(0)) >= BF16_COMPUTE_CAPABILITY}
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability")
        return {"platform": "gpu", "name": details.get("device_name", gpus[0].name),
                "bfloat16": capability is not None and _capability(capability) >= BF16_COMPUTE_CAPABILITY}
    return None


def loader_workers(device):
    """Loader worker processes for a run on `device` (an `accelerator()` value)."""
    if device is None:
        return CPU_WORKERS
    return max(CPU_WORKERS, available_cores() - RESERVED_CORES)


def mixed_precision(device):
    """Whether a run on `device` computes in mixed bfloat16."""
    return bool(device and device["bfloat16"])


def apply(args):
    """Set `args.workers` and `args.mixed_precision` where they are None (the
    flag not given) from the machine; logs what was chosen."""
    unset = [name for name in ("workers", "mixed_precision") if getattr(args, name, False) is None]
    if not unset:
        return args
    device = accelerator()
    if "workers" in unset:
        args.workers = loader_workers(device)
    if "mixed_precision" in unset:
        args.mixed_precision = mixed_precision(device)
    where = f"{device['name']} ({device['platform']})" if device else "no accelerator"
    logger.info("machine defaults (%s, %d cores available): %s", where, available_cores(), ", ".join(
        f"--workers {args.workers}" if name == "workers" else
        ("mixed_bfloat16" if args.mixed_precision else "float32") for name in unset))
    return args

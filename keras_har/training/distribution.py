"""Data-parallel (and model-parallel) training through `keras.distribution`.

JAX only: Keras' distribution API places variables and shards batches with
JAX's sharding. On several hosts, every process runs the same command with
the JAX coordinator environment set (see README); `keras.distribution.initialize`
connects them, and each process's loader reads its own shard of the data.
"""

import logging
import os

import keras

logger = logging.getLogger("keras_har")

MULTI_HOST_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS")


def _require_jax(flag):
    if keras.backend.backend() != "jax":
        raise SystemExit(
            f"{flag} needs KERAS_BACKEND=jax (keras.distribution runs on JAX); "
            f"this process uses {keras.backend.backend()!r}. Multi-GPU with the torch "
            "backend is not supported by keras-har."
        )


def initialize_multi_host():
    """Connect the processes of a multi-host job when its environment says so."""
    if any(os.environ.get(name) for name in MULTI_HOST_ENV):
        keras.distribution.initialize()


def process_shard():
    """(index, count) of this process, for sharding the data loader."""
    if keras.backend.backend() != "jax":
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def enable_data_parallel(devices=None):
    """Replicate the model on every device and split each global batch across them."""
    _require_jax("--data-parallel")
    initialize_multi_host()
    devices = devices or keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    logger.info("data parallel over %d devices: %s", len(devices), ", ".join(map(str, devices)))
    return distribution


def model_parallel_layout(device_mesh, model_axis="model"):
    """A LayoutMap sharding the attention and MLP kernels of VideoMAE / ViT
    blocks along `model_axis` (Megatron style: qkv and fc1 by columns, proj
    and fc2 by rows); everything else is replicated."""
    layout = keras.distribution.LayoutMap(device_mesh)
    layout[r".*attention/qkv/kernel"] = (None, model_axis)
    layout[r".*attention/proj/kernel"] = (model_axis, None)
    layout[r".*fc1/kernel"] = (None, model_axis)
    layout[r".*fc2/kernel"] = (model_axis, None)
    return layout


def enable_model_parallel(model_parallel_size, devices=None):
    """Shard large kernels over `model_parallel_size` devices, data-parallel over the rest."""
    _require_jax("--model-parallel")
    initialize_multi_host()
    devices = devices or keras.distribution.list_devices()
    if len(devices) % model_parallel_size:
        raise SystemExit(f"{len(devices)} devices do not split into groups of {model_parallel_size}.")
    mesh = keras.distribution.DeviceMesh(
        shape=(len(devices) // model_parallel_size, model_parallel_size),
        axis_names=("batch", "model"),
        devices=devices,
    )
    distribution = keras.distribution.ModelParallel(
        layout_map=model_parallel_layout(mesh), batch_dim_name="batch"
    )
    keras.distribution.set_distribution(distribution)
    logger.info("model parallel: mesh %s over %d devices", mesh.shape, len(devices))
    return distribution

"""Data-parallel (and model-parallel) training through `keras.distribution`.

JAX only: Keras' distribution API places variables and shards batches with
JAX's sharding. One process drives all the devices of its machine. On several
machines, every process runs the same command with the multi-host environment
set (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES`,
`KERAS_DISTRIBUTION_PROCESS_ID`, or `JAX_COORDINATOR_ADDRESS` on a cluster JAX
detects, e.g. SLURM); `keras.distribution.initialize` connects them, and each
process's training loader reads its own shard of every epoch (`process_shard`)
in batches of `global batch / number of processes`.

The torch and TensorFlow backends are not supported: `--data-parallel` /
`--model-parallel` raise `DistributionError` saying so. The sharding layout
of model parallelism is the model's (`get_layout_map(device_mesh)` on the
classifier class); this module knows no variable names.
"""

import logging
import os

import keras

logger = logging.getLogger("keras_har")

MULTI_HOST_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS")


class DistributionError(ValueError):
    """Multi-device settings that cannot work (backend, device or batch counts)."""


def _require_jax(flag):
    if keras.backend.backend() != "jax":
        raise DistributionError(
            f"{flag} needs KERAS_BACKEND=jax (keras.distribution runs on JAX only); this "
            f"process uses the {keras.backend.backend()!r} backend. Multi-device training "
            "with the torch or tensorflow backend is not supported by keras-har: run "
            "with KERAS_BACKEND=jax, or drop the flag to train on one device."
        )


def initialize_multi_host():
    """Connect the processes of a multi-host job when its environment says so
    (once per process; a no-op on a single machine)."""
    if not any(os.environ.get(name) for name in MULTI_HOST_ENV):
        return False
    import jax

    if not jax.distributed.is_initialized():
        keras.distribution.initialize()
        logger.info("multi-host: process %d of %d, %d local / %d global devices",
                    jax.process_index(), jax.process_count(), jax.local_device_count(),
                    jax.device_count())
    return True


def process_shard():
    """`(index, count)` of this process among the job's processes, for
    sharding the training data; `(0, 1)` on one machine or another backend."""
    if keras.backend.backend() != "jax":
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def data_parallel_replicas(distribution=None):
    """How many ways the global batch is split: the size of the distribution's
    batch mesh axis (1 without a distribution)."""
    distribution = distribution or keras.distribution.distribution()
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    return mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)]


def local_batch_multiple():
    """Every batch one process feeds the model must be a multiple of this:
    the data-parallel replicas on this process's devices (1 without a
    distribution)."""
    _, count = process_shard()
    return max(1, data_parallel_replicas() // count)


def check_global_batch(global_batch_size, distribution=None):
    """The global batch must split evenly over the processes and the replicas."""
    if not global_batch_size:
        return
    replicas = data_parallel_replicas(distribution)
    _, processes = process_shard()
    for ways, what in ((replicas, "data-parallel replicas"), (processes, "processes")):
        if global_batch_size % ways:
            raise DistributionError(
                f"--batch-size {global_batch_size} (the global batch) does not split evenly "
                f"over {ways} {what}; use a multiple of {ways}."
            )


def _devices(devices):
    return list(devices) if devices else keras.distribution.list_devices()


def enable_data_parallel(devices=None, global_batch_size=None):
    """Replicate the model on every device (of every process) and split each
    global batch across them. Call before building the model."""
    _require_jax("--data-parallel")
    initialize_multi_host()
    devices = _devices(devices)
    # The loaders shard per process themselves (`process_shard`); Keras'
    # tf.data auto-sharding would shard a second time.
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    check_global_batch(global_batch_size, distribution)
    keras.distribution.set_distribution(distribution)
    logger.info("data parallel over %d devices: %s", len(devices), ", ".join(map(str, devices)))
    return distribution


class _ModelParallel(keras.distribution.ModelParallel):
    """`ModelParallel` that replicates (with a warning) a variable whose
    sharded dimension does not split evenly over the mesh axis (e.g. 6 heads
    over 4 devices), instead of failing when the variable is created."""

    def get_variable_layout(self, variable):
        layout = super().get_variable_layout(variable)
        mesh = self.device_mesh
        for size, axis in zip(variable.shape, layout.axes):
            if axis is not None and size % mesh.shape[mesh.axis_names.index(axis)]:
                logger.warning("model parallel: %s %s does not split over the %r axis; replicated",
                               variable.path, tuple(variable.shape), axis)
                return keras.distribution.TensorLayout([None] * len(variable.shape), mesh)
        return layout


def enable_model_parallel(model_parallel_size, get_layout_map, devices=None, global_batch_size=None):
    """Shard the large kernels over groups of `model_parallel_size` devices,
    data parallel across the groups, with the model's layout
    (`get_layout_map(device_mesh, "model")`, e.g. `VideoMAEClassifier.get_layout_map`).
    Call before building the model."""
    _require_jax("--model-parallel")
    initialize_multi_host()
    devices = _devices(devices)
    if model_parallel_size < 1 or len(devices) % model_parallel_size:
        raise DistributionError(f"--model-parallel {model_parallel_size}: {len(devices)} devices do not "
                         f"split into groups of {model_parallel_size}.")
    _, processes = process_shard()
    local = len(devices) // processes
    if processes > 1 and local % model_parallel_size:
        raise DistributionError(f"--model-parallel {model_parallel_size}: a model-parallel group must "
                         f"sit on one machine ({local} devices per process).")
    mesh = keras.distribution.DeviceMesh(
        shape=(len(devices) // model_parallel_size, model_parallel_size),
        axis_names=("batch", "model"),
        devices=devices,
    )
    distribution = _ModelParallel(
        layout_map=get_layout_map(mesh, "model"), batch_dim_name="batch", auto_shard_dataset=False
    )
    check_global_batch(global_batch_size, distribution)
    keras.distribution.set_distribution(distribution)
    logger.info("model parallel: mesh %s (batch, model) over %d devices",
                tuple(mesh.shape), len(devices))
    return distribution


def divisible_batches(loader, multiple=None):
    """`loader.build()` (one evaluation epoch) with every batch cut to a
    multiple of `multiple` (default `local_batch_multiple()`): under a
    distribution each batch is split across the devices, so its size must
    divide evenly. With a batch size that divides, only the last partial batch
    is cut, dropping at most `multiple - 1` videos (from validation during
    `fit`; the final evaluation, batch by batch, sees all of them). Without a
    distribution it is `loader.build()`."""
    dataset = loader.build()
    multiple = multiple or local_batch_multiple()
    total = loader.sampler.per_epoch
    full, last = divmod(total, loader.batch_size)
    dropped = full * (loader.batch_size % multiple) + last % multiple
    if dropped == 0:
        return dataset
    logger.warning("validation during training skips %d of %d videos: batches of %d (last %d) "
                   "are cut to a multiple of %d devices", dropped, total, loader.batch_size, last,
                   multiple)
    if loader.frontend == "tf":
        import tensorflow as tf

        def cut_tf(*batch):
            size = tf.shape(batch[0])[0]
            return tuple(t[: size - size % multiple] for t in batch)

        return dataset.map(cut_tf).filter(lambda *batch: tf.shape(batch[0])[0] > 0)

    def cut(batch):
        size = len(batch[0])
        return tuple(a[: size - size % multiple] for a in batch)

    return dataset.map(cut).filter(lambda batch: len(batch[0]) > 0)


def divisible_steps(loader, multiple=None):
    """How many batches `divisible_batches(loader, multiple)` yields (a batch
    cut to nothing is dropped): the `validation_steps` to pass to `fit`."""
    multiple = multiple or local_batch_multiple()
    full, last = divmod(loader.sampler.per_epoch, loader.batch_size)
    return (full if loader.batch_size >= multiple else 0) + (1 if last >= multiple else 0)

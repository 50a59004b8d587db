"""Data- and model-parallel training through `keras.distribution` (JAX only).

The multi-device checks run in subprocesses with KERAS_BACKEND=jax, because
XLA_FLAGS (the virtual CPU device count) and the multi-process setup must be
fixed before JAX starts:

- 2 virtual CPU devices in one process: DataParallel and ModelParallel runs
  of a tiny VideoMAE give the per-step losses and final weights of a
  one-device run from the same weights and global batches; the batch really is
  split over the devices; the LayoutMap really shards the attention / MLP
  kernels of VideoMAE and of the keras-hub ViT baseline.
- 2 processes x 1 CPU device (the multi-host path: keras.distribution.initialize,
  gloo collectives, per-process loader shards and batches): `fit` on the real
  loader gives the losses of a one-process run with the global batch.

They run once, when the suite's backend is jax (the subprocesses are jax
whatever the suite's backend). Under torch / tensorflow the flags must fail
with a clear message, and the loader sharding is tested on every backend.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_har.data import HMDB51, make_loader
from keras_har.training import distribution as dist
from keras_har.training import experiment

JAX_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="keras.distribution is JAX-only in keras-har; the subprocess checks run once, "
    "under KERAS_BACKEND=jax",
)
TOLERANCE = 1e-4
# Unoptimised XLA code compiles about twice as fast; every run compared within
# a subprocess uses it, and the one-process reference of the multi-process
# test (optimised, in this process) still agrees within TOLERANCE.
FAST_COMPILE = "--xla_backend_optimization_level=0"
CLIP = dict(num_frames=4, sampling_rate=2, image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)

# What a subprocess shares: a tiny VideoMAE and the recipe's optimizer.
COMMON = r'''
import json, os, sys
import numpy as np
import keras
from keras_har.models import VideoMAEBackbone, VideoMAEClassifier, MeanPooledViTClassifier
from keras_har.training.optimizers import build_adamw

NUM_CLASSES = 6


def tiny_videomae():
    keras.utils.set_random_seed(0)
    backbone = VideoMAEBackbone(image_size=32, num_frames=4, patch_size=8, tubelet_size=2,
                                hidden_dim=32, num_layers=1, num_heads=4, mlp_dim=64)
    return VideoMAEClassifier(backbone, num_classes=NUM_CLASSES)


def compile_like_recipe(model, grad_accum=2):
    # The VideoMAE recipe's optimizer: AdamW, clip norm 1, accumulation, layer decay.
    optimizer = build_adamw(model, 1e-3, weight_decay=0.05, clip_norm=1.0,
                            grad_accum=grad_accum, layer_decay=0.75)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model
'''

DEVICES_SCRIPT = COMMON + r'''
import jax
from keras_har.training import distribution as dist

out = {"devices": [str(d) for d in jax.devices()]}
rng = np.random.default_rng(0)
X = rng.normal(size=(4, 8, 4, 32, 32, 3)).astype("float32")  # 4 global batches of 8
Y = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, size=(4, 8))]


def train(model, init):
    model.set_weights(init)
    losses = [float(model.train_on_batch(x, y, return_dict=True)["loss"]) for x, y in zip(X, Y)]
    return losses, [np.asarray(w) for w in model.get_weights()]


def probe_input_sharding(model):
    """Record the sharding of the batch inside the jitted train step."""
    seen, call = [], model.call

    def probed(inputs, *args, **kwargs):
        jax.debug.inspect_array_sharding(
            inputs, callback=lambda s: seen.append(
                {"devices": len(s.device_set), "shard": list(s.shard_shape(inputs.shape))}))
        return call(inputs, *args, **kwargs)

    model.call = probed
    return seen


def sharding(variable):
    s = variable.value.sharding
    return {"spec": [None if a is None else str(a) for a in s.spec] + [None] * (len(variable.shape) - len(s.spec)),
            "devices": len(s.device_set), "shard": list(s.shard_shape(variable.shape)),
            "shape": list(variable.shape)}


def weight_error(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


# One device: no distribution at all.
reference = compile_like_recipe(tiny_videomae())
init = [np.asarray(w) for w in reference.get_weights()]
ref_losses, ref_weights = train(reference, init)
out["reference_losses"] = ref_losses

# Data parallel over the 2 devices.
dist.enable_data_parallel(global_batch_size=8)
model = compile_like_recipe(tiny_videomae())
seen = probe_input_sharding(model)
losses, weights = train(model, init)
out["data_parallel"] = {
    "losses": losses, "weight_error": weight_error(weights, ref_weights), "input": seen,
    "variables": {v.path: sharding(v) for v in model.weights if v.path.endswith("fc1/kernel")},
    "optimizer": {v.path: sharding(v) for v in model.optimizer.variables
                  if "fc1_kernel" in v.path},
}

# Model parallel: mesh (batch 1, model 2).
dist.enable_model_parallel(2, VideoMAEClassifier.get_layout_map, global_batch_size=8)
model = compile_like_recipe(tiny_videomae())
losses, weights = train(model, init)
out["model_parallel"] = {
    "losses": losses, "weight_error": weight_error(weights, ref_weights),
    "variables": {v.path: sharding(v) for v in model.weights},
    "optimizer": {v.path: sharding(v) for v in model.optimizer.variables
                  if "qkv_kernel" in v.path},
}
dist.enable_model_parallel(2, MeanPooledViTClassifier.get_layout_map, global_batch_size=8)
vit = MeanPooledViTClassifier.from_scratch(image_size=32, num_classes=NUM_CLASSES, patch_size=8,
                                           num_layers=1, num_heads=4, hidden_dim=32, mlp_dim=64)
out["vit"] = {"variables": {v.path: sharding(v) for v in vit.weights}}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
'''

PROCESS_SCRIPT = COMMON + r'''
import argparse
from keras_har.data import HMDB51
from keras_har.training import experiment
from keras_har.training.distribution import divisible_batches

videos, splits, init_file, out_file = sys.argv[1:5]
args = argparse.Namespace(**json.loads(sys.argv[5]))
experiment.set_precision_and_distribution(args)  # keras.distribution.initialize + DataParallel
import jax

train_set = HMDB51(videos, splits, split=1, subset="train")
test_set = HMDB51(videos, splits, split=1, subset="test")
model = tiny_videomae()
model.load_weights(init_file)
compile_like_recipe(model, grad_accum=1)
loader = experiment.make_loader(args, train_set, model, training=True)
loader.epochs = 1
fit_losses = []
model.fit(loader.for_fit(), epochs=1, steps_per_epoch=loader.steps_per_epoch, verbose=0,
          callbacks=[keras.callbacks.LambdaCallback(
              on_train_batch_end=lambda batch, logs: fit_losses.append(float(logs["loss"])))])
val_loader = experiment.make_loader(args, test_set, model, training=False)
val = model.evaluate(divisible_batches(val_loader), verbose=0, return_dict=True)
x, _ = next(iter(val_loader))
logits = model.predict_on_batch(x)  # what the final evaluation runs
np.savez(out_file + ".npz", *model.get_weights())
with open(out_file, "w") as f:
    json.dump({"process": [jax.process_index(), jax.process_count()],
               "devices": [jax.local_device_count(), jax.device_count()],
               "shard": [loader.sampler.shard_index, loader.sampler.shard_count],
               "batch_size": loader.batch_size, "steps": loader.steps_per_epoch,
               "fit_losses": fit_losses, "val_loss": float(val["loss"]),
               "logits": np.asarray(logits).tolist()}, f)
'''


def _env(device_count, **extra):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={device_count} {FAST_COMPILE}",
               **extra)
    for name in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS"):
        if name not in extra:
            env.pop(name, None)
    return env


def _run(script, args, env, tmp_path, name):
    """Start `script` in a subprocess; its output goes to `tmp_path/name.log`
    (a file, not a pipe: two processes waiting on each other must never
    block on a full pipe)."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(script))
    with open(tmp_path / f"{name}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(path), *map(str, args)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = tmp_path / f"{name}.log"
    return proc


def _check(proc, name, timeout=240):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{name} timed out:\n{proc.log.read_text()[-4000:]}")
    assert proc.returncode == 0, f"{name} failed:\n{proc.log.read_text()[-4000:]}"


@JAX_ONLY
def test_two_devices_match_one_device(tmp_path):
    out_file = tmp_path / "devices.json"
    _check(_run(DEVICES_SCRIPT, [out_file], _env(2), tmp_path, "devices"), "2-device run")
    out = json.loads(out_file.read_text())
    assert len(out["devices"]) == 2
    ref = np.array(out["reference_losses"])
    assert np.all(np.isfinite(ref)) and len(ref) == 4

    dp = out["data_parallel"]
    np.testing.assert_allclose(dp["losses"], ref, atol=TOLERANCE, rtol=0)
    assert dp["weight_error"] < 1e-5
    # The global batch of 8 is split: 4 samples on each of the 2 devices.
    assert dp["input"] and all(s == {"devices": 2, "shard": [4, 4, 32, 32, 3]} for s in dp["input"])
    # Weights and optimizer slots are replicated on both devices.
    for v in [*dp["variables"].values(), *dp["optimizer"].values()]:
        assert v["devices"] == 2 and v["shard"] == v["shape"], v
    # momentum, velocity and the gradient accumulator
    assert len(dp["variables"]) == 1 and len(dp["optimizer"]) == 3, dp["optimizer"]

    mp = out["model_parallel"]
    np.testing.assert_allclose(mp["losses"], ref, atol=TOLERANCE, rtol=0)
    assert mp["weight_error"] < 1e-5
    sharded = {p: v["spec"] for p, v in mp["variables"].items() if "model" in v["spec"]}
    expected = {}
    for i in range(1):
        block = f"transformer_layer_{i}"
        expected.update({
            f"{block}/attention/qkv/kernel": [None, "model"],
            f"{block}/attention/proj/kernel": ["model", None],
            f"{block}/fc1/kernel": [None, "model"],
            f"{block}/fc1/bias": ["model"],
            f"{block}/fc2/kernel": ["model", None],
        })
    assert sharded == expected
    qkv = mp["variables"]["transformer_layer_0/attention/qkv/kernel"]
    assert qkv["shape"] == [32, 96] and qkv["shard"] == [32, 48]
    # The optimizer's slots (momentum, velocity, accumulator) follow the variable's layout.
    assert all(v["spec"] == [None, "model"] for v in mp["optimizer"].values())
    assert len(mp["optimizer"]) == 3, mp["optimizer"]

    vit = out["vit"]
    sharded = {p: v["spec"] for p, v in vit["variables"].items() if "model" in v["spec"]}
    block = "vit_encoder/transformer_block_1"
    assert sharded == {
        f"{block}/mha/query/kernel": [None, "model", None],
        f"{block}/mha/key/kernel": [None, "model", None],
        f"{block}/mha/value/kernel": [None, "model", None],
        f"{block}/mha/query/bias": ["model", None],
        f"{block}/mha/key/bias": ["model", None],
        f"{block}/mha/value/bias": ["model", None],
        f"{block}/mha/attention_output/kernel": ["model", None, None],
        f"{block}/mlp/dense_1/kernel": [None, "model"],
        f"{block}/mlp/dense_1/bias": ["model"],
        f"{block}/mlp/dense_2/kernel": ["model", None],
    }
    assert vit["variables"][f"{block}/mlp/dense_1/kernel"]["shard"] == [32, 32]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_args(**overrides):
    args = dict(batch_size=8, seed=0, mixed_precision=False, data_parallel=True,
                model_parallel=0, loader="grain", workers=0, on_bad_video="raise", **CLIP)
    args.update(overrides)
    return args


@JAX_ONLY
def test_two_processes_match_one_process(tmp_path, tiny_synthetic):
    """The multi-host path on one machine: 2 processes of 1 CPU device each."""
    videos, splits = tiny_synthetic
    init_file = tmp_path / "init.weights.h5"
    port = _free_port()
    # The initial weights, saved once and loaded by every run.
    ns = {}
    exec(compile(COMMON, "<COMMON>", "exec"), ns)
    reference = ns["tiny_videomae"]()
    reference.save_weights(init_file)

    procs = []
    for pid in range(2):
        env = _env(1, KERAS_DISTRIBUTION_JOB_ADDRESSES=f"localhost:{port}",
                   KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID=str(pid))
        procs.append(_run(PROCESS_SCRIPT, [videos, splits, init_file, tmp_path / f"p{pid}.json",
                                           json.dumps(_run_args())], env, tmp_path, f"process{pid}"))
    try:
        # Meanwhile, the one-process reference with the global batch, in this process.
        args = argparse.Namespace(**_run_args(data_parallel=False))
        ns["compile_like_recipe"](reference, grad_accum=1)
        loader = experiment.make_loader(args, HMDB51(videos, splits, subset="train"), reference,
                                        training=True)
        loader.epochs = 1
        fit_losses = []  # Keras logs the running mean of the epoch's losses
        reference.fit(loader.for_fit(), epochs=1, steps_per_epoch=loader.steps_per_epoch,
                      verbose=0, callbacks=[keras.callbacks.LambdaCallback(
                          on_train_batch_end=lambda batch, logs: fit_losses.append(float(logs["loss"])))])
        val_loader = experiment.make_loader(args, HMDB51(videos, splits, subset="test"),
                                            reference, training=False)
        val = reference.evaluate(val_loader.build(), verbose=0, return_dict=True)
        logits = reference.predict_on_batch(next(iter(val_loader))[0])
        for pid, proc in enumerate(procs):
            _check(proc, f"process {pid}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert loader.batch_size == 8 and loader.steps_per_epoch == 3  # 24 videos
    for pid in range(2):
        out = json.loads((tmp_path / f"p{pid}.json").read_text())
        assert out["process"] == [pid, 2] and out["devices"] == [1, 2]
        assert out["shard"] == [pid, 2] and out["batch_size"] == 4 and out["steps"] == 3
        np.testing.assert_allclose(out["fit_losses"], fit_losses, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(out["val_loss"], val["loss"], atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(out["logits"], logits, atol=TOLERANCE, rtol=0)
        with np.load(tmp_path / f"p{pid}.json.npz") as weights:
            for i, w in enumerate(reference.get_weights()):
                np.testing.assert_allclose(weights[f"arr_{i}"], np.asarray(w), atol=1e-5, rtol=0)


def test_loader_shards_split_each_epoch(tiny_synthetic):
    """Per-process shards of every epoch are disjoint, and step k of the shards
    reads exactly the videos of step k of the unsharded loader (2x the batch)."""
    train_set = HMDB51(*tiny_synthetic, split=1, subset="train")  # 24 videos
    kwargs = dict(training=True, workers=0, with_index=True, seed=3, **CLIP)
    full = make_loader(train_set, batch_size=6, **kwargs)
    shards = [make_loader(train_set, batch_size=3, shard_index=i, shard_count=2, **kwargs)
              for i in range(2)]
    assert full.steps_per_epoch == 4 and [s.steps_per_epoch for s in shards] == [4, 4]
    for epoch in range(2):
        full_batches = list(full.build(epoch, epoch + 1))
        shard_batches = [list(s.build(epoch, epoch + 1)) for s in shards]
        epoch_items = [set(), set()]
        for step, (x, _, index) in enumerate(full_batches):
            (x0, _, i0), (x1, _, i1) = shard_batches[0][step], shard_batches[1][step]
            assert len(i0) == len(i1) == 3
            assert sorted([*i0, *i1]) == sorted(index)
            # The same video gets the same clip whether sharded or not.
            np.testing.assert_array_equal(x0[0], x[list(index).index(i0[0])])
            epoch_items[0].update(int(i) for i in i0)
            epoch_items[1].update(int(i) for i in i1)
        assert not epoch_items[0] & epoch_items[1]
        assert epoch_items[0] | epoch_items[1] == set(range(24))
    # An evaluation epoch: every video exactly once over the shards.
    evals = [make_loader(train_set, batch_size=5, shard_index=i, shard_count=2, training=False,
                         workers=0, with_index=True, **CLIP) for i in range(2)]
    seen = [int(i) for loader in evals for *_, index in loader for i in index]
    assert sorted(seen) == list(range(24))
    with pytest.raises(ValueError, match="shard_index"):
        make_loader(train_set, batch_size=3, shard_index=2, shard_count=2, **kwargs)


def test_loader_shard_same_from_grain_and_tf(tiny_synthetic):
    train_set = HMDB51(*tiny_synthetic, split=1, subset="train")
    kwargs = dict(training=True, batch_size=3, shard_index=1, shard_count=2, workers=0,
                  with_index=True, seed=3, **CLIP)
    grain_batches = list(make_loader(train_set, loader="grain", **kwargs))
    tf_batches = list(make_loader(train_set, loader="tf", **kwargs))
    assert len(grain_batches) == len(tf_batches) == 4
    for g, t in zip(grain_batches, tf_batches):
        for a, b in zip(g, t):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loader", ["grain", "tf"])
def test_divisible_batches_cut_the_last_validation_batch(tiny_synthetic, loader):
    videos = HMDB51(*tiny_synthetic, split=1, subset="train")  # 24 videos
    kwargs = dict(training=False, workers=0, loader=loader, with_index=True, **CLIP)

    def sizes(batch_size, multiple):
        loader_ = make_loader(videos, batch_size=batch_size, **kwargs)
        index = [np.asarray(b[2]) for b in dist.divisible_batches(loader_, multiple)]
        assert dist.divisible_steps(loader_, multiple) == len(index)  # fit's validation_steps
        if batch_size % (multiple or 1) == 0:  # only the end of the epoch is cut
            assert sorted(np.concatenate(index)) == list(range(sum(map(len, index))))
        return [len(i) for i in index]

    assert sizes(15, 5) == [15, 5]  # the last batch of 9 cut to 5
    assert sizes(10, 5) == [10, 10]  # a last batch of 4 dropped
    assert sizes(8, 4) == [8, 8, 8]  # untouched
    assert sizes(8, None) == [8, 8, 8]  # no distribution: untouched
    assert sizes(7, 2) == [6, 6, 6, 2]  # a batch size that does not split: every batch cut


def _model_parallel_paths():
    """Which variables of a tiny VideoMAE and ViT their LayoutMaps shard."""
    from keras_har.models import MeanPooledViTClassifier, VideoMAEBackbone, VideoMAEClassifier

    backbone = VideoMAEBackbone(image_size=32, num_frames=4, patch_size=8, tubelet_size=2,
                                hidden_dim=32, num_layers=1, num_heads=4, mlp_dim=64)
    videomae = VideoMAEClassifier(backbone, num_classes=3)
    vit = MeanPooledViTClassifier.from_scratch(image_size=32, num_classes=3, patch_size=8,
                                               num_layers=1, num_heads=4, hidden_dim=32, mlp_dim=64)

    mesh = keras.distribution.DeviceMesh((1, 2), ("batch", "model"), ["cpu:0", "cpu:1"])

    def matched(model):
        layout_map = type(model).get_layout_map(mesh)
        out = {}
        for v in model.weights:
            rules = [p for p in layout_map.keys() if re.search(p, v.path)]
            assert len(rules) <= 1, v.path  # LayoutMap refuses a path matching two rules
            if rules:
                axes = layout_map[rules[0]].axes
                assert len(axes) == len(v.shape), (v.path, v.shape)
                out[v.path] = axes
        return out

    return matched(videomae), matched(vit)


@pytest.mark.skipif(keras.backend.backend() == "jax",
                    reason="under jax, test_two_devices_match_one_device checks the real sharding")
def test_model_parallel_rules_match_both_models():
    """The LayoutMap rules name exactly the attention / MLP kernels of both
    models, one rule per variable, with the variable's rank."""
    videomae, vit = _model_parallel_paths()
    assert sorted(videomae) == sorted(
        f"transformer_layer_0/{p}" for p in
        ("attention/qkv/kernel", "attention/proj/kernel", "fc1/kernel", "fc1/bias", "fc2/kernel"))
    assert sorted(vit) == sorted(
        f"vit_encoder/transformer_block_1/{p}" for p in
        ("mha/query/kernel", "mha/key/kernel", "mha/value/kernel", "mha/query/bias",
         "mha/key/bias", "mha/value/bias", "mha/attention_output/kernel", "mlp/dense_1/kernel",
         "mlp/dense_1/bias", "mlp/dense_2/kernel"))


@JAX_ONLY
def test_model_parallel_replicates_what_does_not_split():
    """6 heads over a model axis of 4: replicated with a warning, not an error."""
    mesh = keras.distribution.DeviceMesh((1, 4), ("batch", "model"), [f"cpu:{i}" for i in range(4)])
    from keras_har.models import MeanPooledViTClassifier, VideoMAEClassifier

    vit = dist._ModelParallel(layout_map=MeanPooledViTClassifier.get_layout_map(mesh), batch_dim_name="batch")
    videomae = dist._ModelParallel(layout_map=VideoMAEClassifier.get_layout_map(mesh), batch_dim_name="batch")

    class Var:
        _layout = None

        def __init__(self, path, shape):
            self.path, self.shape = path, shape

    assert vit.get_variable_layout(Var("b/mha/query/kernel", (384, 6, 64))).axes == (None, None, None)
    assert vit.get_variable_layout(Var("b/mha/query/kernel", (768, 12, 64))).axes == (None, "model", None)
    assert videomae.get_variable_layout(Var("b/fc1/kernel", (768, 3072))).axes == (None, "model")
    assert videomae.get_variable_layout(Var("b/norm1/gamma", (768,))).axes == (None,)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the flags work under jax")
def test_parallel_flags_need_jax(backend):
    args = argparse.Namespace(seed=0, mixed_precision=False, data_parallel=True, model_parallel=0,
                              batch_size=8)
    from keras_har.models import VideoMAEClassifier

    with pytest.raises(dist.DistributionError, match=f"KERAS_BACKEND=jax.*{backend}.*not supported"):
        experiment.set_precision_and_distribution(args, VideoMAEClassifier)
    args.data_parallel, args.model_parallel = False, 2
    with pytest.raises(dist.DistributionError, match="--model-parallel needs KERAS_BACKEND=jax"):
        experiment.set_precision_and_distribution(args, VideoMAEClassifier)
    assert keras.distribution.distribution() is None
    assert dist.process_shard() == (0, 1) and dist.local_batch_multiple() == 1


@JAX_ONLY
def test_global_batch_must_split():
    devices = keras.distribution.list_devices()[:1]
    try:
        from keras_har.models import VideoMAEClassifier

        with pytest.raises(dist.DistributionError, match="groups of 2"):
            dist.enable_model_parallel(2, VideoMAEClassifier.get_layout_map, devices=devices)
        d = keras.distribution.DataParallel(devices=devices)
        dist.check_global_batch(7, d)  # one replica: anything splits
        mesh = keras.distribution.DeviceMesh((2,), ("batch",), ["cpu:0", "cpu:1"])
        with pytest.raises(dist.DistributionError, match="--batch-size 7 .* 2 data-parallel replicas"):
            dist.check_global_batch(7, keras.distribution.DataParallel(device_mesh=mesh))
        assert dist.local_batch_multiple() == 1
        keras.distribution.set_distribution(keras.distribution.DataParallel(device_mesh=mesh))
        assert dist.data_parallel_replicas() == 2 and dist.local_batch_multiple() == 2
    finally:
        keras.distribution.set_distribution(None)

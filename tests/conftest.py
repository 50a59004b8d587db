"""Shared fixtures: a fixed seed, tiny model configs and small real video files.

Keras fixes its backend per process; `scripts/test.sh` runs this suite once per
backend (jax, torch, tensorflow) with ``KERAS_BACKEND`` set.
"""

import atexit
import os
import random
import shutil
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The suite runs the same tiny recipes many times, in this process and in the
# subprocesses it starts (kills and resumes): JAX's persistent compilation
# cache compiles each of their functions once per session (the same
# executables, so results are unchanged; the fault-injection test went from
# 126 s to 38 s). A temporary directory, removed at the end; the subprocesses
# inherit it through the environment.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _jax_cache = tempfile.mkdtemp(prefix="keras-har-tests-jax-cache-")
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=_jax_cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")

# The oracles (transformers, timm) bring torch in beside keras-hub's TensorFlow.
from keras_har.utils.import_order import load_torch_before_tensorflow  # noqa: E402

load_torch_before_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SEED = 1234


@pytest.fixture(autouse=True)
def fixed_seed():
    """Every test starts from the same random state on every backend."""
    random.seed(SEED)
    np.random.seed(SEED)
    keras.utils.set_random_seed(SEED)
    yield


@pytest.fixture
def backend():
    return keras.backend.backend()


def tiny_videomae_config(**overrides):
    """A transformers `VideoMAEConfig` dict small enough for a CPU test."""
    config = dict(
        image_size=32,
        patch_size=8,
        num_channels=3,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-12,
        qkv_bias=True,
        use_mean_pooling=True,
    )
    config.update(overrides)
    return config


def tiny_vit_config(**overrides):
    """A timm `VisionTransformer` kwargs dict small enough for a CPU test."""
    config = dict(
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=4,
        mlp_ratio=2.0,
    )
    config.update(overrides)
    return config


@pytest.fixture
def videomae_config_factory():
    return tiny_videomae_config


@pytest.fixture
def vit_config_factory():
    return tiny_vit_config


def write_video(path, frames, fps=25.0, fourcc="MJPG"):
    """Write `frames` (T, H, W, 3) uint8 RGB to `path` with OpenCV."""
    import cv2

    frames = np.asarray(frames, dtype=np.uint8)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height)
    )
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def moving_square_frames(num_frames=12, height=48, width=64, seed=0, reverse=False):
    """A bright square moving left to right on a dark, noisy background."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, size=(num_frames, height, width, 3), dtype=np.uint8)
    size = max(4, height // 4)
    for t in range(num_frames):
        x = int((width - size) * t / max(1, num_frames - 1))
        y = (height - size) // 2
        frames[t, y : y + size, x : x + size] = (230, 200, 40)
    return frames[::-1].copy() if reverse else frames


@pytest.fixture
def video_dir(tmp_path):
    """A temp dir holding a few real .avi files written by OpenCV.

    Returns (dir, {name: frames}) with the frames that were written.
    """
    out = tmp_path / "videos"
    out.mkdir()
    written = {}
    for i, (n, h, w) in enumerate([(12, 48, 64), (20, 40, 56), (8, 64, 48)]):
        frames = moving_square_frames(n, h, w, seed=i)
        write_video(out / f"clip_{i}.avi", frames)
        written[f"clip_{i}.avi"] = frames
    return out, written


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """A tiny synthetic dataset (6 classes, 4 train + 2 test videos each, 12
    frames of 32x32) in HMDB51's layout: returns (videos_dir, splits_dir)."""
    from keras_har.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_synthetic")
    return make_synthetic_dataset(
        root, train_per_class=4, test_per_class=2, num_frames=12, image_size=32, seed=0
    )

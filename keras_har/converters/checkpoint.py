"""Reading checkpoint files into numpy, and strict key bookkeeping for converters
(errors are `CheckpointError`, defined in `keras_har.utils.preset_utils`)."""

import json
import logging
import pathlib

import numpy as np

from keras_har.utils.preset_utils import CheckpointError

logger = logging.getLogger("keras_har")

SAFETENSORS_FILES = ("model.safetensors", "open_clip_model.safetensors")
TORCH_FILES = ("pytorch_model.bin", "open_clip_pytorch_model.bin", "model.pth")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def find_weights_file(directory):
    """The weights file of a Hugging Face / timm style directory."""
    directory = pathlib.Path(directory)
    for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (directory / name).exists():
            return directory / name
    for name in SAFETENSORS_FILES + TORCH_FILES:
        if (directory / name).exists():
            return directory / name
    found = sorted(p.name for p in directory.iterdir())
    raise FileNotFoundError(
        f"No weights in {directory}: expected one of "
        f"{', '.join(SAFETENSORS_FILES + TORCH_FILES)}; found {found}."
    )


def _to_numpy(tensor):
    import torch

    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.detach().cpu().numpy()


def load_state_dict(path):
    """Read a checkpoint file (or sharded index) into `{name: np.ndarray}`."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = find_weights_file(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint file {path} does not exist.")
    if path.name.endswith(".index.json"):
        try:
            index = json.loads(path.read_text())
            shards = sorted(set(index["weight_map"].values()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path}: not a readable shard index ({type(e).__name__}: {e}).") from None
        state = {}
        directory = path.parent.resolve()
        for shard in shards:
            shard_path = (path.parent / str(shard)).resolve()
            if shard_path.parent != directory:
                raise CheckpointError(
                    f"{path} names the shard {shard!r}, outside the checkpoint directory; "
                    "shards are only read from the checkpoint's own directory."
                )
            state.update(load_state_dict(shard_path))
        return state
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            state = {}
            with safe_open(str(path), framework="numpy") as f:
                for key in f.keys():
                    state[key] = f.get_tensor(key)
            return state
        if path.suffix in (".bin", ".pth", ".pt"):
            try:
                import torch
            except ImportError as e:
                raise ImportError(
                    f"{path} is a PyTorch pickle; reading it needs torch "
                    "(`pip install torch`), or convert it to .safetensors."
                ) from e
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            for wrapper in ("state_dict", "model", "module"):
                if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                    state = state[wrapper]
            return {k: _to_numpy(v) for k, v in state.items() if hasattr(v, "shape")}
    except (ImportError, FileNotFoundError):
        raise
    except Exception as e:
        raise CheckpointError(f"Cannot read checkpoint {path}: {e}") from e
    raise CheckpointError(
        f"Unknown checkpoint format {path.suffix!r} for {path}; expected one of "
        f"{WEIGHT_SUFFIXES}."
    )


class StateDict:
    """A checkpoint being converted: every tensor must be used or reported.

    `take(key, shape)` returns the tensor and marks it used; a missing key or a
    shape mismatch raises `CheckpointError` naming the key and both shapes.
    """

    def __init__(self, tensors, source="checkpoint"):
        self.tensors = dict(tensors)
        self.source = str(source)
        self.used = set()

    def __contains__(self, key):
        return key in self.tensors

    def keys(self):
        return self.tensors.keys()

    def take(self, key, shape=None):
        if key not in self.tensors:
            raise CheckpointError(
                f"{self.source}: missing tensor {key!r}"
                + (f" (expected shape {tuple(shape)})" if shape is not None else "")
                + "."
            )
        value = self.tensors[key]
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise CheckpointError(
                f"{self.source}: tensor {key!r} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(shape)}."
            )
        self.used.add(key)
        return np.asarray(value)

    def skip(self, *keys):
        """Mark tensors as deliberately unused (e.g. a replaced head); keys the
        checkpoint does not have are ignored."""
        self.used.update(k for k in keys if k in self.tensors)

    def unused(self):
        return sorted(set(self.tensors) - self.used)

    def check_all_used(self, ignore_prefixes=(), strict=True):
        """Log the tensors deliberately ignored; raise on any other unused one."""
        unused = self.unused()
        ignored = [k for k in unused if k.startswith(tuple(ignore_prefixes))]
        unknown = [k for k in unused if k not in ignored]
        if ignored:
            logger.info(
                "%s: %d tensors not used by this model (%s...)",
                self.source,
                len(ignored),
                ", ".join(ignored[:3]),
            )
        if unknown and strict:
            raise CheckpointError(
                f"{self.source}: {len(unknown)} tensors were not converted: "
                f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}."
            )
        return ignored, unknown


def assign(variable, value, name):
    """Assign `value` to a Keras variable, naming both shapes on mismatch."""
    if tuple(variable.shape) != tuple(value.shape):
        raise CheckpointError(
            f"Cannot assign {name}: checkpoint shape {tuple(value.shape)}, "
            f"model variable {variable.path} shape {tuple(variable.shape)}."
        )
    variable.assign(value.astype(variable.dtype) if hasattr(value, "astype") else value)


def read_preprocessor_normalization(path):
    """`(image_mean, image_std)` of a transformers `preprocessor_config.json`
    in `path`, or None when there is none (or it has no mean/std)."""
    file = pathlib.Path(path) / "preprocessor_config.json"
    if not file.is_file():
        return None
    try:
        config = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: not readable JSON ({e}).") from None
    if isinstance(config, dict) and "image_mean" in config and "image_std" in config:
        return tuple(config["image_mean"]), tuple(config["image_std"])
    return None


def assign_layer_norm(layer, state, key, dim):
    """A torch LayerNorm `key.weight` / `key.bias` into a Keras LayerNormalization."""
    assign(layer.gamma, state.take(key + ".weight", (dim,)), key + ".weight")
    assign(layer.beta, state.take(key + ".bias", (dim,)), key + ".bias")


class StateDictPort:
    """keras-hub's converter interface (`port_weight(variable, key, hook_fn)`)
    over a `StateDict`, so keras-hub's own weight converters run with our
    every-tensor-used bookkeeping. A key the checkpoint stores without the
    model prefix (a bare `ViTModel`: `embeddings...` for `vit.embeddings...`)
    is found either way."""

    def __init__(self, state):
        self.state = state

    def key(self, hf_weight_key):
        if hf_weight_key in self.state:
            return hf_weight_key
        bare = hf_weight_key.split(".", 1)[-1]
        return bare if bare in self.state else hf_weight_key

    def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
        key = self.key(hf_weight_key)
        value = self.state.take(key)
        if hook_fn is not None:
            value = np.asarray(hook_fn(value, list(keras_variable.shape)))
        assign(keras_variable, value, key)

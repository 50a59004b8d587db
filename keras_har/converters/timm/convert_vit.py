"""timm `VisionTransformer` checkpoints -> keras-hub `ViTBackbone` (+ a Dense head).

keras-hub converts several timm families but not ViT, so this module does, for
the class-token ViTs timm publishes (`vit_{tiny,small,base,large}_patch*`,
`deit_*` without distillation token, augreg / in21k variants). A checkpoint is
a directory as timm writes it to the hub (`config.json` with "architecture",
"model_args", "pretrained_cfg" plus `model.safetensors` or `pytorch_model.bin`)
or a bare state-dict file.

The architecture is read from the tensor shapes (width from
`patch_embed.proj.weight`, depth from the number of `blocks.*`, MLP width from
`fc1`, patch size from the conv kernel, grid from `pos_embed`); only the head
count is not in the weights: it comes from the caller, `model_args.num_heads`,
the architecture name (tiny 3, small 6, base 12, large 16) or `width // 64`.
timm's fused `qkv` is split into keras `MultiHeadAttention`'s query / key /
value kernels. Every tensor is used or reported: features this backbone does
not have (layer scale, qk-norm, register tokens, `fc_norm` / average pooling)
leave tensors unused and fail with their names.

keras-hub's converter protocol (`backbone_cls`, `convert_backbone_config`,
`convert_weights`, `convert_head`), run by
`keras_har.converters.preset_loaders.TimmPresetLoader`.
"""

import logging
import math
import re

import keras_hub
import numpy as np

from keras_har.converters.checkpoint import (
    CheckpointError,
    StateDict,
    assign,
    assign_layer_norm,
    load_state_dict,
)
from keras_har.models.mean_pooled_vit.mean_pooled_vit_presets import VIT_LAYER_NORM_EPS

logger = logging.getLogger("keras_har")

# Heads and width of timm's named ViT sizes.
TIMM_VIT_SIZES = {
    "tiny": (3, 192),
    "small": (6, 384),
    "base": (12, 768),
    "large": (16, 1024),
    "huge": (16, 1280),
}
HEAD_KEYS = ("head.weight", "head.bias")
UNUSED_PREFIXES = ()
backbone_cls = keras_hub.models.ViTBackbone



def open_state(path, config):
    """The tensors of a timm directory or bare state-dict file (`module.` stripped)."""
    tensors = load_state_dict(path)
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return StateDict(tensors, source=str(path))

def infer_num_heads(hidden_dim, config, num_heads=None):
    """Head count: explicit > config `model_args` > architecture name > width // 64."""
    if num_heads is None:
        num_heads = config.get("model_args", {}).get("num_heads")
    if num_heads is None:
        match = re.search(r"_(tiny|small|base|large|huge)_", config.get("architecture", "") + "_")
        if match and TIMM_VIT_SIZES[match.group(1)][1] == hidden_dim:
            num_heads = TIMM_VIT_SIZES[match.group(1)][0]
    if num_heads is None and hidden_dim % 64 == 0:
        num_heads = hidden_dim // 64
    if num_heads is None or hidden_dim % num_heads:
        raise CheckpointError(
            f"Cannot tell the number of attention heads of a {hidden_dim}-wide ViT "
            f"(got {num_heads}); pass num_heads=..."
        )
    return int(num_heads)


def convert_backbone_config(config, state, num_heads=None, image_size=None):
    """`keras_hub.models.ViTBackbone` kwargs read from the tensor shapes.

    `image_size` (int or (h, w)) overrides the checkpoint's own input size; the
    position embedding is then resampled when the weights are loaded.
    """
    if "cls_token" not in state:
        raise CheckpointError(
            f"{state.source}: no 'cls_token': only class-token ViTs are supported "
            "(global_pool='avg' / class_token=False models are not)."
        )
    proj = state.take("patch_embed.proj.weight")
    hidden_dim, channels, patch_h, patch_w = proj.shape
    depth = len({int(m.group(1)) for k in state.keys() if (m := re.match(r"blocks\.(\d+)\.", k))})
    if depth == 0:
        raise CheckpointError(f"{state.source}: no 'blocks.<i>.' tensors: not a timm ViT.")
    mlp_dim = state.take("blocks.0.mlp.fc1.weight").shape[0]
    grid = checkpoint_grid(state)
    if image_size is None:
        image_size = (grid[0] * patch_h, grid[1] * patch_w)
    elif isinstance(image_size, int):
        image_size = (image_size, image_size)
    return dict(
        image_shape=(int(image_size[0]), int(image_size[1]), int(channels)),
        patch_size=(int(patch_h), int(patch_w)),
        num_layers=depth,
        num_heads=infer_num_heads(hidden_dim, config, num_heads),
        hidden_dim=int(hidden_dim),
        mlp_dim=int(mlp_dim),
        layer_norm_epsilon=VIT_LAYER_NORM_EPS,
        use_mha_bias="blocks.0.attn.qkv.bias" in state,
        use_mlp_bias="blocks.0.mlp.fc1.bias" in state,
        use_class_token=True,
        use_patch_bias="patch_embed.proj.bias" in state,
    )


def checkpoint_grid(state):
    """The (rows, cols) patch grid of `pos_embed` (class token excluded)."""
    pos = state.take("pos_embed")
    num_patches = pos.shape[1] - 1
    side = math.isqrt(num_patches)
    if pos.ndim != 3 or side * side != num_patches:
        raise CheckpointError(
            f"{state.source}: 'pos_embed' has shape {tuple(pos.shape)}; expected "
            "(1, 1 + n*n, width) (a class token plus a square grid)."
        )
    return side, side


def resample_position_embedding(pos_embed, new_grid, num_prefix_tokens=1):
    """Bicubic resampling of a (1, prefix + h*w, d) table to `new_grid`, as
    timm's `resample_abs_pos_embed` (antialiased, align_corners=False)."""
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    old = math.isqrt(grid.shape[1])
    if (old, old) == tuple(new_grid):
        return pos_embed
    dim = grid.shape[-1]
    grid = grid.reshape(1, old, old, dim).astype("float32")
    try:
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(grid).permute(0, 3, 1, 2)
        t = F.interpolate(t, size=tuple(new_grid), mode="bicubic", antialias=True, align_corners=False)
        resized = t.permute(0, 2, 3, 1).numpy()
    except ImportError:  # same method through keras (numerics differ slightly)
        from keras import ops

        resized = ops.convert_to_numpy(
            ops.image.resize(grid, tuple(new_grid), interpolation="bicubic", antialias=True)
        )
    logger.info("Resampled the position embedding from %dx%d to %dx%d.", old, old, *new_grid)
    return np.concatenate([prefix, resized.reshape(1, -1, dim)], axis=1)


def _dense(layer, state, key, in_dim, out_dim):
    assign(layer.kernel, state.take(f"{key}.weight", (out_dim, in_dim)).T, f"{key}.weight")
    if layer.bias is not None:
        assign(layer.bias, state.take(f"{key}.bias", (out_dim,)), f"{key}.bias")



def _attention(mha, state, key, dim, num_heads):
    """timm's fused qkv (3*d, d) -> keras MHA query/key/value (d, heads, d/heads)."""
    head_dim = dim // num_heads
    qkv = state.take(f"{key}.qkv.weight", (3 * dim, dim))
    qkv_bias = state.take(f"{key}.qkv.bias", (3 * dim,)) if mha.use_bias else None
    for i, dense in enumerate((mha.query_dense, mha.key_dense, mha.value_dense)):
        name = f"{key}.qkv.weight[{'qkv'[i]}]"
        kernel = qkv[i * dim : (i + 1) * dim].T.reshape(dim, num_heads, head_dim)
        assign(dense.kernel, kernel, name)
        if qkv_bias is not None:
            bias = qkv_bias[i * dim : (i + 1) * dim].reshape(num_heads, head_dim)
            assign(dense.bias, bias, f"{key}.qkv.bias[{'qkv'[i]}]")
    out = mha.output_dense
    proj = state.take(f"{key}.proj.weight", (dim, dim))
    assign(out.kernel, proj.T.reshape(num_heads, head_dim, dim), f"{key}.proj.weight")
    if out.bias is not None:
        assign(out.bias, state.take(f"{key}.proj.bias", (dim,)), f"{key}.proj.bias")


def convert_weights(backbone, state, config=None):
    """Copy a timm ViT state dict into a `keras_hub.models.ViTBackbone`."""
    dim, mlp_dim = backbone.hidden_dim, backbone.mlp_dim
    embed = backbone.get_layer("vit_patching_and_embedding")
    patch_h, patch_w = backbone.patch_size
    channels = backbone.image_shape[-1]
    proj = state.take("patch_embed.proj.weight", (dim, channels, patch_h, patch_w))
    assign(embed.patch_embedding.kernel, proj.transpose(2, 3, 1, 0), "patch_embed.proj.weight")
    if embed.patch_embedding.bias is not None:
        assign(embed.patch_embedding.bias, state.take("patch_embed.proj.bias", (dim,)), "patch_embed.proj.bias")
    assign(embed.class_token, state.take("cls_token", (1, 1, dim)), "cls_token")
    new_grid = (backbone.image_shape[0] // patch_h, backbone.image_shape[1] // patch_w)
    pos = resample_position_embedding(state.take("pos_embed"), new_grid)
    assign(embed.position_embedding.embeddings, pos[0], "pos_embed")

    encoder = backbone.get_layer("vit_encoder")
    for i, block in enumerate(encoder.encoder_layers):
        key = f"blocks.{i}"
        assign_layer_norm(block.layer_norm_1, state, f"{key}.norm1", dim)
        _attention(block.mha, state, f"{key}.attn", dim, backbone.num_heads)
        assign_layer_norm(block.layer_norm_2, state, f"{key}.norm2", dim)
        _dense(block.mlp.dense_1, state, f"{key}.mlp.fc1", dim, mlp_dim)
        _dense(block.mlp.dense_2, state, f"{key}.mlp.fc2", mlp_dim, dim)
    assign_layer_norm(encoder.layer_norm, state, "norm", dim)


def head_num_classes(state):
    """Classes of the checkpoint's head, or None if it has none."""
    if "head.weight" not in state:
        return None
    return int(state.tensors["head.weight"].shape[0])



def convert_head(classifier, state, config, keep_head=True):
    """timm `head` (classes, d) -> the classifier's Dense `predictions`."""
    if not keep_head:
        return
    dense = classifier.predictions
    in_dim, classes = dense.kernel.shape
    _dense(dense, state, "head", in_dim, classes)

def normalization(path, config):
    """(mean, std) of the checkpoint's `pretrained_cfg`, or None."""
    cfg = config.get("pretrained_cfg", {})
    if "mean" in cfg and "std" in cfg:
        return tuple(cfg["mean"]), tuple(cfg["std"])
    return None


def label_names(config):
    """The class names a timm config lists (`label_names`), or None."""
    names = config.get("label_names") or config.get("pretrained_cfg", {}).get("label_names")
    return [str(n) for n in names] if names else None


"""Hugging Face VideoMAE checkpoints -> `VideoMAEBackbone` / `VideoMAEClassifier`.

keras-hub's converter protocol (`backbone_cls`, `convert_backbone_config`,
`convert_weights`, `convert_head`), run by
`keras_har.converters.preset_loaders.TransformersPresetLoader`.

Reads a directory as `save_pretrained` writes it (config.json plus
model.safetensors, pytorch_model.bin or a sharded index) for any of
`VideoMAEForVideoClassification`, `VideoMAEModel` and `VideoMAEForPreTraining`,
in today's key layout and the older one the hub still holds (`q_bias` /
`v_bias`, `qkv_bias` in the config, LayerNorm `gamma` / `beta`). Every tensor
is used or reported: the pre-training decoder is ignored with a log line; any
other unused, missing or mis-shaped tensor is an error that names it.
"""

import logging
import re

import numpy as np

from keras_har.converters.checkpoint import (
    CheckpointError,
    StateDict,
    assign,
    assign_layer_norm,
    load_state_dict,
    read_preprocessor_normalization,
)
from keras_har.models.videomae import VIDEOMAE_ARCHITECTURES, VIDEOMAE_DECODER, VideoMAEBackbone

logger = logging.getLogger("keras_har")

_BASE = VIDEOMAE_ARCHITECTURES["base"]
# VideoMAEConfig defaults (transformers: ViT-B), used where a config omits a field.
HF_DEFAULTS = dict(
    image_size=224,
    patch_size=_BASE["patch_size"],
    num_channels=3,
    num_frames=16,
    tubelet_size=_BASE["tubelet_size"],
    hidden_size=_BASE["hidden_dim"],
    num_hidden_layers=_BASE["num_layers"],
    num_attention_heads=_BASE["num_heads"],
    intermediate_size=_BASE["mlp_dim"],
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    layer_norm_eps=1e-12,
    qv_bias=True,
    use_mean_pooling=True,
)
backbone_cls = VideoMAEBackbone
HEAD_KEYS = ("classifier.weight", "classifier.bias")
# Tensors a classifier does not use: the head's (replaced or absent) and
# VideoMAEForPreTraining's decoder, ignored with a log line.
UNUSED_PREFIXES = PRETRAINING_ONLY = (
    "decoder.",
    "encoder_to_decoder.",
    "mask_token",
    "position_embeddings",
    "videomae.embeddings.position_embeddings",  # the fixed table, in old files
)


def convert_backbone_config(config, state=None):
    """`VideoMAEConfig` fields -> `VideoMAEBackbone` arguments."""
    c = {**HF_DEFAULTS, **config}
    # transformers 5 renamed `qkv_bias` to `qv_bias`; checkpoints say `qkv_bias`.
    use_qv_bias = config.get("qv_bias", config.get("qkv_bias", HF_DEFAULTS["qv_bias"]))
    image_size = c["image_size"]
    return dict(
        image_size=list(image_size) if isinstance(image_size, (list, tuple)) else int(image_size),
        patch_size=int(c["patch_size"]),
        num_channels=int(c["num_channels"]),
        num_frames=int(c["num_frames"]),
        tubelet_size=int(c["tubelet_size"]),
        hidden_dim=int(c["hidden_size"]),
        num_layers=int(c["num_hidden_layers"]),
        num_heads=int(c["num_attention_heads"]),
        mlp_dim=int(c["intermediate_size"]),
        activation=c["hidden_act"],
        use_qv_bias=bool(use_qv_bias),
        layer_norm_epsilon=float(c["layer_norm_eps"]),
        use_mean_pooling=bool(c["use_mean_pooling"]),
        dropout_rate=float(c["hidden_dropout_prob"]),
        attention_dropout=float(c["attention_probs_dropout_prob"]),
    )


def normalize_keys(tensors):
    """Map every historical key layout onto one: `videomae.` prefix, q_bias/v_bias."""
    out = {}
    for key, value in tensors.items():
        new = key
        if new.startswith("module."):
            new = new[len("module.") :]
        if new.startswith(("embeddings.", "encoder.", "layernorm.")):
            new = "videomae." + new  # a bare VideoMAEModel
        new = re.sub(r"(norm[^.]*|LayerNorm)\.gamma$", r"\1.weight", new)
        new = re.sub(r"(norm[^.]*|LayerNorm)\.beta$", r"\1.bias", new)
        # transformers >= 5 writes query/value biases as Linear biases.
        new = re.sub(r"attention\.attention\.query\.bias$", "attention.attention.q_bias", new)
        new = re.sub(r"attention\.attention\.value\.bias$", "attention.attention.v_bias", new)
        if new in out:
            raise CheckpointError(f"Two checkpoint tensors map onto {new!r} (one is {key!r}).")
        out[new] = value
    return out


def linear(state, key, in_dim, out_dim):
    """A torch Linear weight (out, in) as a Keras Dense kernel (in, out)."""
    return state.take(key, (out_dim, in_dim)).T


def convert_weights(backbone, state, config=None):
    """Assign every encoder tensor of `state` (a normalised `StateDict`)."""
    hidden = backbone.hidden_dim
    p, t, c = backbone.patch_size, backbone.tubelet_size, backbone.num_channels
    kernel = state.take(
        "videomae.embeddings.patch_embeddings.projection.weight", (hidden, c, t, p, p)
    )
    conv = backbone.patch_embedding
    assign(conv.kernel, kernel.transpose(2, 3, 4, 1, 0), "patch embedding kernel")
    assign(
        conv.bias,
        state.take("videomae.embeddings.patch_embeddings.projection.bias", (hidden,)),
        "patch embedding bias",
    )
    for i, block in enumerate(backbone.transformer_layers):
        load_block_weights(block, state, f"videomae.encoder.layer.{i}.")
    if backbone.final_norm is not None:
        assign_layer_norm(backbone.final_norm, state, "videomae.layernorm", hidden)
    extra = [k for k in state.unused() if re.match(r"videomae\.encoder\.layer\.(\d+)\.", k)]
    if extra:
        raise CheckpointError(
            f"{state.source}: the checkpoint has more encoder layers than the config's "
            f"{backbone.num_layers} (e.g. {extra[0]!r})."
        )


def load_block_weights(block, state, prefix):
    """One `VideoMAETransformerBlock` from transformers' `VideoMAELayer` at `prefix`."""
    hidden, inter = block.hidden_dim, block.mlp_dim
    attn = prefix + "attention.attention."
    qkv = np.concatenate(
        [linear(state, attn + name + ".weight", hidden, hidden) for name in ("query", "key", "value")],
        axis=1,
    )
    assign(block.attention.qkv.kernel, qkv, attn + "{query,key,value}.weight")
    if block.use_qv_bias:
        assign(block.attention.q_bias, state.take(attn + "q_bias", (hidden,)), attn + "q_bias")
        assign(block.attention.v_bias, state.take(attn + "v_bias", (hidden,)), attn + "v_bias")
    for layer, key, din, dout in (
        (block.attention.proj, "attention.output.dense", hidden, hidden),
        (block.fc1, "intermediate.dense", hidden, inter),
        (block.fc2, "output.dense", inter, hidden),
    ):
        assign(layer.kernel, linear(state, prefix + key + ".weight", din, dout), prefix + key)
        assign(layer.bias, state.take(prefix + key + ".bias", (dout,)), prefix + key + ".bias")
    for layer, key in ((block.norm1, "layernorm_before"), (block.norm2, "layernorm_after")):
        assign_layer_norm(layer, state, prefix + key, hidden)


def open_state(path, config):
    """The checkpoint tensors of a Hugging Face VideoMAE directory, keys normalised."""
    if config.get("model_type") != "videomae":
        raise CheckpointError(f"{path}/config.json: model_type is {config.get('model_type')!r}, "
                              "expected 'videomae'.")
    return StateDict(normalize_keys(load_state_dict(path)), source=str(path))


def normalization(path, config):
    """`(image_mean, image_std)` of the checkpoint's preprocessor_config.json, or None
    (the model's default, ImageNet's, then applies)."""
    return read_preprocessor_normalization(path)


def head_num_classes(state):
    """Classes of the checkpoint's head, or None without one."""
    return int(state.tensors["classifier.weight"].shape[0]) if "classifier.weight" in state else None


def label_names(config):
    """Class names ordered by id, or None."""
    id2label = config.get("id2label")
    if not id2label:
        return None
    return [id2label[k] for k in sorted(id2label, key=int)]


def convert_head(classifier, state, config, keep_head=True):
    """`fc_norm` (when both have it) and, with `keep_head`, the Dense head of
    VideoMAEForVideoClassification."""
    hidden = classifier.backbone.hidden_dim
    if classifier.fc_norm is not None and "fc_norm.weight" in state:
        assign_layer_norm(classifier.fc_norm, state, "fc_norm", hidden)
    if not keep_head:
        return
    head = classifier.predictions
    assign(head.kernel, linear(state, "classifier.weight", hidden, classifier.num_classes), "classifier.weight")
    assign(head.bias, state.take("classifier.bias", (classifier.num_classes,)), "classifier.bias")


# VideoMAEConfig's decoder defaults (transformers).
HF_DECODER_DEFAULTS = dict(
    decoder_hidden_size=VIDEOMAE_DECODER["decoder_hidden_dim"],
    decoder_num_hidden_layers=VIDEOMAE_DECODER["decoder_num_layers"],
    decoder_num_attention_heads=VIDEOMAE_DECODER["decoder_num_heads"],
    decoder_intermediate_size=VIDEOMAE_DECODER["decoder_mlp_dim"],
    norm_pix_loss=True,
)
# The fixed sinusoidal tables some files hold: recomputed, never loaded.
FIXED_TABLES = ("position_embeddings", "videomae.embeddings.position_embeddings")


def decoder_kwargs_from_hf_config(config):
    """`VideoMAEConfig` decoder fields -> `VideoMAEPretrainer` arguments."""
    c = {**HF_DECODER_DEFAULTS, **config}
    return dict(
        decoder_hidden_dim=int(c["decoder_hidden_size"]),
        decoder_num_layers=int(c["decoder_num_hidden_layers"]),
        decoder_num_heads=int(c["decoder_num_attention_heads"]),
        decoder_mlp_dim=int(c["decoder_intermediate_size"]),
        norm_pix_loss=bool(c["norm_pix_loss"]),
    )


def has_decoder(state):
    return any(key.startswith(("decoder.", "encoder_to_decoder.")) or key == "mask_token" for key in state.keys())


def load_decoder_weights(pretrainer, state):
    """mask_token, encoder_to_decoder, decoder blocks, norm and head of a
    `VideoMAEForPreTraining` state dict into a `VideoMAEPretrainer`."""
    hidden = pretrainer.backbone.hidden_dim
    width = pretrainer.decoder_hidden_dim
    assign(
        pretrainer.encoder_to_decoder.kernel,
        linear(state, "encoder_to_decoder.weight", hidden, width),
        "encoder_to_decoder.weight",
    )
    assign(pretrainer.mask_token_fill.mask_token, state.take("mask_token", (1, 1, width)), "mask_token")
    for i, block in enumerate(pretrainer.decoder_layers):
        load_block_weights(block, state, f"decoder.decoder_layers.{i}.")
    extra = [k for k in state.unused() if k.startswith("decoder.decoder_layers.")]
    if extra:
        raise CheckpointError(
            f"{state.source}: the checkpoint has more decoder layers than the config's "
            f"{pretrainer.decoder_num_layers} (e.g. {extra[0]!r})."
        )
    assign_layer_norm(pretrainer.decoder_norm, state, "decoder.norm", width)
    outputs = pretrainer.decoder_head.units
    assign(pretrainer.decoder_head.kernel, linear(state, "decoder.head.weight", width, outputs), "decoder.head.weight")
    assign(pretrainer.decoder_head.bias, state.take("decoder.head.bias", (outputs,)), "decoder.head.bias")


def convert_task(cls, loader, load_weights=True, **kwargs):
    """A `VideoMAEPretrainer` (`cls`) from a transformers directory, through
    the preset loader that holds it: the encoder and, for a
    `VideoMAEForPreTraining` checkpoint, the decoder (a headless checkpoint
    gets a new one); every tensor is used or named in an error. `kwargs`
    override the Task's or the backbone's arguments."""
    config, state = loader.config, loader.state
    task_keys = set(VIDEOMAE_DECODER) | {"norm_pix_loss", "mask_ratio", "masking", "image_mean", "image_std"}
    task_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in task_keys}
    norm = normalization(loader.path, config)
    if norm:
        task_kwargs.setdefault("image_mean", norm[0])
        task_kwargs.setdefault("image_std", norm[1])
    backbone = loader.load_backbone(cls.backbone_cls, load_weights, **kwargs)
    pretrainer = cls(backbone, **{**decoder_kwargs_from_hf_config(config), **task_kwargs})
    if not load_weights:
        return pretrainer
    if has_decoder(state):
        load_decoder_weights(pretrainer, state)
    else:
        logger.info("%s has no pre-training decoder (a %s checkpoint): a new decoder.", loader.path,
                    config.get("architectures"))
    # A classification head (fine-tuned checkpoint) is not part of pre-training.
    state.skip(*HEAD_KEYS, "fc_norm.weight", "fc_norm.bias")
    state.check_all_used(ignore_prefixes=FIXED_TABLES)
    return pretrainer

"""Hugging Face VideoMAE checkpoints -> `VideoMAEBackbone` / `VideoMAEClassifier`.

Reads a directory as `save_pretrained` writes it (config.json plus
model.safetensors, pytorch_model.bin or a sharded index) for any of
`VideoMAEForVideoClassification`, `VideoMAEModel` and `VideoMAEForPreTraining`,
in today's key layout and the older one the hub still holds (`q_bias` /
`v_bias`, `qkv_bias` in the config, LayerNorm `gamma` / `beta`). Every tensor
is used or reported: the pre-training decoder is ignored with a log line; any
other unused, missing or mis-shaped tensor is an error that names it.
"""

import json
import logging
import pathlib
import re

import numpy as np

from keras_har.converters.checkpoint import (
    CheckpointError,
    StateDict,
    assign,
    load_state_dict,
)

logger = logging.getLogger("keras_har")

# VideoMAEConfig defaults (transformers), used where a config omits a field.
HF_DEFAULTS = dict(
    image_size=224,
    patch_size=16,
    num_channels=3,
    num_frames=16,
    tubelet_size=2,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    layer_norm_eps=1e-12,
    qv_bias=True,
    use_mean_pooling=True,
)
# Tensors of VideoMAEForPreTraining that the encoder does not use.
PRETRAINING_ONLY = (
    "decoder.",
    "encoder_to_decoder.",
    "mask_token",
    "position_embeddings",
    "videomae.embeddings.position_embeddings",  # the fixed table, in old files
)
# transformers' own fc_norm is `nn.LayerNorm(hidden_size)`: torch's default eps.
FC_NORM_EPS = 1e-5


def is_hf_checkpoint(path):
    """True for a transformers-format directory (config.json with a model_type)."""
    config_file = pathlib.Path(path) / "config.json"
    if not config_file.exists():
        return pathlib.Path(path).is_file()
    config = json.loads(config_file.read_text())
    return "registered_name" not in config


def read_hf_config(path):
    path = pathlib.Path(path)
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{path} has no config.json: not a Hugging Face checkpoint directory.")
    config = json.loads(config_file.read_text())
    model_type = config.get("model_type")
    if model_type != "videomae":
        raise CheckpointError(
            f"{config_file}: model_type is {model_type!r}, expected 'videomae'."
        )
    return config


def read_preprocessor_config(path):
    """(image_mean, image_std) from preprocessor_config.json, or None."""
    file = pathlib.Path(path) / "preprocessor_config.json"
    if not file.exists():
        return None
    config = json.loads(file.read_text())
    if "image_mean" in config and "image_std" in config:
        return tuple(config["image_mean"]), tuple(config["image_std"])
    return None


def backbone_kwargs_from_hf_config(config):
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
        hidden_size=int(c["hidden_size"]),
        num_layers=int(c["num_hidden_layers"]),
        num_heads=int(c["num_attention_heads"]),
        intermediate_size=int(c["intermediate_size"]),
        hidden_act=c["hidden_act"],
        use_qv_bias=bool(use_qv_bias),
        layer_norm_eps=float(c["layer_norm_eps"]),
        use_mean_pooling=bool(c["use_mean_pooling"]),
        hidden_dropout=float(c["hidden_dropout_prob"]),
        attention_dropout=float(c["attention_probs_dropout_prob"]),
    )


def labels_from_hf_config(config):
    """Class names ordered by id, or None for a checkpoint without a head."""
    id2label = config.get("id2label")
    if not id2label:
        return None
    return [id2label[k] for k in sorted(id2label, key=int)]


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


def load_backbone_weights(backbone, state):
    """Assign every encoder tensor of `state` (a normalised `StateDict`)."""
    hidden = backbone.hidden_size
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
        load_layer_norm(backbone.final_norm, state, "videomae.layernorm", hidden)
    extra = [k for k in state.unused() if re.match(r"videomae\.encoder\.layer\.(\d+)\.", k)]
    if extra:
        raise CheckpointError(
            f"{state.source}: the checkpoint has more encoder layers than the config's "
            f"{backbone.num_layers} (e.g. {extra[0]!r})."
        )


def load_block_weights(block, state, prefix):
    """One `VideoMAETransformerBlock` from transformers' `VideoMAELayer` at `prefix`."""
    hidden, inter = block.hidden_size, block.intermediate_size
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
        load_layer_norm(layer, state, prefix + key, hidden)


def load_layer_norm(layer, state, key, dim):
    assign(layer.gamma, state.take(key + ".weight", (dim,)), key + ".weight")
    assign(layer.beta, state.take(key + ".bias", (dim,)), key + ".bias")


def open_checkpoint(path):
    """(config dict, normalised StateDict) of a Hugging Face VideoMAE directory."""
    path = pathlib.Path(path)
    if path.is_file():
        raise CheckpointError(
            f"{path} is a file; a VideoMAE checkpoint is a directory with config.json "
            "and its weights (as `save_pretrained` writes it)."
        )
    config = read_hf_config(path)
    tensors = load_state_dict(path)
    return config, StateDict(normalize_keys(tensors), source=str(path))


def convert_backbone(path, load_weights=True, **overrides):
    """A `VideoMAEBackbone` from a Hugging Face directory; returns (backbone, config, state)."""
    from keras_har.models.videomae_backbone import VideoMAEBackbone

    config, state = open_checkpoint(path)
    kwargs = backbone_kwargs_from_hf_config(config)
    kwargs.update(overrides)
    backbone = VideoMAEBackbone(**kwargs)
    if load_weights:
        load_backbone_weights(backbone, state)
    return backbone, config, state


def load_classifier_head(classifier, state):
    """fc_norm and the Dense head of VideoMAEForVideoClassification."""
    hidden = classifier.backbone.hidden_size
    if classifier.fc_norm is not None:
        load_layer_norm(classifier.fc_norm, state, "fc_norm", hidden)
    head = classifier.predictions
    assign(head.kernel, linear(state, "classifier.weight", hidden, classifier.num_classes), "classifier.weight")
    assign(head.bias, state.take("classifier.bias", (classifier.num_classes,)), "classifier.bias")


# VideoMAEConfig's decoder defaults (transformers).
HF_DECODER_DEFAULTS = dict(
    decoder_hidden_size=384,
    decoder_num_hidden_layers=4,
    decoder_num_attention_heads=6,
    decoder_intermediate_size=1536,
    norm_pix_loss=True,
)
# The fixed sinusoidal tables some files hold: recomputed, never loaded.
FIXED_TABLES = ("position_embeddings", "videomae.embeddings.position_embeddings")


def decoder_kwargs_from_hf_config(config):
    """`VideoMAEConfig` decoder fields -> `VideoMAEPretrainer` arguments."""
    c = {**HF_DECODER_DEFAULTS, **config}
    return dict(
        decoder_hidden_size=int(c["decoder_hidden_size"]),
        decoder_num_hidden_layers=int(c["decoder_num_hidden_layers"]),
        decoder_num_attention_heads=int(c["decoder_num_attention_heads"]),
        decoder_intermediate_size=int(c["decoder_intermediate_size"]),
        norm_pix_loss=bool(c["norm_pix_loss"]),
    )


def has_decoder(state):
    return any(key.startswith(("decoder.", "encoder_to_decoder.")) or key == "mask_token" for key in state.keys())


def load_decoder_weights(pretrainer, state):
    """mask_token, encoder_to_decoder, decoder blocks, norm and head of a
    `VideoMAEForPreTraining` state dict into a `VideoMAEPretrainer`."""
    hidden = pretrainer.backbone.hidden_size
    width = pretrainer.decoder_hidden_size
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
            f"{pretrainer.decoder_num_hidden_layers} (e.g. {extra[0]!r})."
        )
    load_layer_norm(pretrainer.decoder_norm, state, "decoder.norm", width)
    outputs = pretrainer.decoder_head.units
    assign(pretrainer.decoder_head.kernel, linear(state, "decoder.head.weight", width, outputs), "decoder.head.weight")
    assign(pretrainer.decoder_head.bias, state.take("decoder.head.bias", (outputs,)), "decoder.head.bias")


def convert_pretrainer(cls, path, load_weights=True, **kwargs):
    """A `VideoMAEPretrainer` (`cls`) from a transformers directory: encoder and,
    for a `VideoMAEForPreTraining` checkpoint, the decoder; every tensor is used
    or named in an error. `kwargs` override the Task's or the backbone's arguments."""
    config, state = open_checkpoint(path)
    task_keys = set(HF_DECODER_DEFAULTS) | {"mask_ratio", "masking", "image_mean", "image_std"}
    task_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in task_keys}
    from keras_har.models.videomae_backbone import VideoMAEBackbone

    backbone = VideoMAEBackbone(**{**backbone_kwargs_from_hf_config(config), **kwargs})
    norm = read_preprocessor_config(path)
    if norm:
        task_kwargs.setdefault("image_mean", norm[0])
        task_kwargs.setdefault("image_std", norm[1])
    pretrainer = cls(backbone, **{**decoder_kwargs_from_hf_config(config), **task_kwargs})
    if not load_weights:
        return pretrainer
    load_backbone_weights(backbone, state)
    if has_decoder(state):
        load_decoder_weights(pretrainer, state)
    else:
        logger.info("%s has no pre-training decoder (a %s checkpoint): a new decoder.", path, config.get("architectures"))
    # A classification head (fine-tuned checkpoint) is not part of pre-training.
    state.check_all_used(ignore_prefixes=FIXED_TABLES + ("classifier.", "fc_norm."))
    return pretrainer

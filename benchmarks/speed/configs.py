"""The models timed (full size and `--quick`), their batches and references,
and their analytic FLOPs (the classifier's forward pass, and a VideoMAE
pre-training step's)."""

NUM_CLASSES = 51
INFER_BATCHES = (1, 4)
TRAIN_BATCH = 2
PRETRAIN_BATCH = 2
PRETRAIN_MASK_RATIO = 0.9  # tube masking, VideoMAE's default
PRETRAIN_MASKING = "tube"


def _architectures(family, module):
    """A family's named architecture sizes (`keras_har.models.<family>.<module>`,
    plain data), read without importing keras_har.models (and so Keras): the
    benchmark's parent process picks no backend."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "keras_har" / "models" / family / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"_sizes_{module}", path)
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    return data


def timed_config(arch, image_size, num_frames, **overrides):
    """A named architecture in the benchmarks' vocabulary (transformers' and
    timm's names, which the reference implementations take)."""
    cfg = dict(image_size=image_size, patch_size=arch["patch_size"], num_frames=num_frames,
               hidden_size=arch["hidden_dim"], num_layers=arch["num_layers"], num_heads=arch["num_heads"],
               intermediate_size=arch["mlp_dim"])
    if "tubelet_size" in arch:
        cfg["tubelet_size"] = arch["tubelet_size"]
    return {**cfg, **overrides}


def _decoder(decoder):
    return dict(decoder_hidden_size=decoder["decoder_hidden_dim"], decoder_num_hidden_layers=decoder["decoder_num_layers"],
                decoder_num_attention_heads=decoder["decoder_num_heads"],
                decoder_intermediate_size=decoder["decoder_mlp_dim"])


_VIDEOMAE = _architectures("videomae", "videomae_presets")
_VIT = _architectures("mean_pooled_vit", "mean_pooled_vit_presets").MEAN_POOLED_VIT_ARCHITECTURES
# VideoMAE-Base with its pre-training decoder (transformers' VideoMAEConfig() defaults) and
# timm's ViT-S/16, 16 frames of 224 px; --quick: the tiny architectures, 2 blocks, 4 frames of 32 px.
FULL_CONFIGS = {
    "videomae": timed_config(_VIDEOMAE.VIDEOMAE_ARCHITECTURES["base"], 224, 16, **_decoder(_VIDEOMAE.VIDEOMAE_DECODER)),
    "vit": timed_config(_VIT["small"], 224, 16),
}
QUICK_CONFIGS = {
    "videomae": timed_config(_VIDEOMAE.VIDEOMAE_ARCHITECTURES["tiny"], 32, 4, num_layers=2,
                       **_decoder(dict(decoder_hidden_dim=32, decoder_num_layers=1, decoder_num_heads=2,
                                       decoder_mlp_dim=64))),
    "vit": timed_config(_VIT["tiny"], 32, 4, num_layers=2),
}
REFERENCE_IMPL = {"videomae": "transformers", "vit": "timm"}
DEFAULT_VARIANT = {"jax": "xla", "tensorflow": "xla", "torch": "eager"}
# Extra variants (--variants backend:name): torch `compile`, tensorflow `graph`, and
# `<variant>+einsum_attention` (keras.ops.dot_product_attention as explicit einsums: keras_models.py).


def model_flops(model, cfg):
    """Analytic forward FLOPs of one clip (multiply-add = 2 FLOPs)."""
    d, m, layers, p = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_layers"], cfg["patch_size"]
    grid = (cfg["image_size"] // p) ** 2
    if model == "videomae":
        patches = (cfg["num_frames"] // cfg["tubelet_size"]) * grid
        tokens, patch_in, copies = patches, cfg["tubelet_size"] * p * p * 3, 1
    else:  # one image ViT per frame, with a class token
        patches, tokens, patch_in, copies = grid, grid + 1, p * p * 3, cfg["num_frames"]
    per_layer = 4 * tokens * d * d * 2 + 2 * tokens * tokens * d * 2 + 2 * tokens * d * m * 2
    head = 2 * d * NUM_CLASSES
    return copies * (2 * patches * patch_in * d + layers * per_layer) + head


def _block_flops(tokens, d, m):
    """One transformer block's forward FLOPs on `tokens` tokens of width d, MLP width m."""
    return 4 * tokens * d * d * 2 + 2 * tokens * tokens * d * 2 + 2 * tokens * d * m * 2


def pretrain_tokens(cfg, mask_ratio=PRETRAIN_MASK_RATIO):
    """(all tokens, visible tokens) of a VideoMAE clip under tube masking."""
    temporal = cfg["num_frames"] // cfg["tubelet_size"]
    spatial = (cfg["image_size"] // cfg["patch_size"]) ** 2
    return temporal * spatial, temporal * (spatial - int(mask_ratio * spatial))


def pretrain_flops(cfg, mask_ratio=PRETRAIN_MASK_RATIO):
    """Analytic FLOPs of one clip's VideoMAE pre-training step (forward x 3):
    tubelet embedding of every token, the encoder on the visible tokens only,
    `encoder_to_decoder`, the decoder on every token, the pixel head on the
    masked ones (VideoMAE-B at 90% tube masking: ~71 GFLOP forward, 1/5.1 of
    the classifier's 360)."""
    d, p, t = cfg["hidden_size"], cfg["patch_size"], cfg["tubelet_size"]
    dd = cfg["decoder_hidden_size"]
    tokens, visible = pretrain_tokens(cfg, mask_ratio)
    patch_in = t * p * p * 3
    forward = (2 * tokens * patch_in * d
               + cfg["num_layers"] * _block_flops(visible, d, cfg["intermediate_size"])
               + 2 * visible * d * dd
               + cfg["decoder_num_hidden_layers"] * _block_flops(tokens, dd, cfg["decoder_intermediate_size"])
               + 2 * (tokens - visible) * dd * patch_in)
    return 3 * forward

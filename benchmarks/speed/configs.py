"""The models timed (full size and `--quick`), their batches and references,
and their analytic FLOPs (the classifier's forward pass, and a VideoMAE
pre-training step's)."""

NUM_CLASSES = 51
INFER_BATCHES = (1, 4)
TRAIN_BATCH = 2
PRETRAIN_BATCH = 2
PRETRAIN_MASK_RATIO = 0.9  # tube masking, VideoMAE's default
PRETRAIN_MASKING = "tube"

# transformers' VideoMAEConfig() defaults (VideoMAE-Base) and timm's ViT-S/16.
FULL_CONFIGS = {
    "videomae": dict(image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=768,
                     num_layers=12, num_heads=12, intermediate_size=3072,
                     # the pre-training decoder (transformers' VideoMAEConfig() defaults: width 384, depth 4)
                     decoder_hidden_size=384, decoder_num_hidden_layers=4, decoder_num_attention_heads=6,
                     decoder_intermediate_size=1536),
    "vit": dict(image_size=224, patch_size=16, num_frames=16, hidden_size=384, num_layers=12,
                num_heads=6, intermediate_size=1536),
}
QUICK_CONFIGS = {
    "videomae": dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=64,
                     num_layers=2, num_heads=4, intermediate_size=128, decoder_hidden_size=32,
                     decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=64),
    "vit": dict(image_size=32, patch_size=8, num_frames=4, hidden_size=64, num_layers=2,
                num_heads=4, intermediate_size=128),
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

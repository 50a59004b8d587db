"""The models timed (full size and `--quick`), their batches and references,
and their analytic FLOPs."""

NUM_CLASSES = 51
INFER_BATCHES = (1, 4)
TRAIN_BATCH = 2

# transformers' VideoMAEConfig() defaults (VideoMAE-Base) and timm's ViT-S/16.
FULL_CONFIGS = {
    "videomae": dict(image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=768,
                     num_layers=12, num_heads=12, intermediate_size=3072),
    "vit": dict(image_size=224, patch_size=16, num_frames=16, hidden_size=384, num_layers=12,
                num_heads=6, intermediate_size=1536),
}
QUICK_CONFIGS = {
    "videomae": dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=64,
                     num_layers=2, num_heads=4, intermediate_size=128),
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

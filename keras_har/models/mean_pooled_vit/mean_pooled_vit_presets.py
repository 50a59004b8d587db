"""timm ViT checkpoints for the mean-pooled baseline (registered with
keras-hub's `register_presets` on `MeanPooledViTClassifier`)."""

MEAN_POOLED_VIT_PRESETS = {
    "vit_small_augreg_in21k_ft_in1k": {
        "metadata": {
            "description": "timm ViT-S/16, ImageNet-21k pre-trained, ImageNet-1k fine-tuned "
            "(the seed's backbone).",
            "params": 22_000_000,
            "path": "vit",
        },
        "kaggle_handle": "hf://timm/vit_small_patch16_224.augreg_in21k_ft_in1k",
    },
}

"""The mean-pooled ViT's named architecture sizes and its checkpoints.

`MEAN_POOLED_VIT_ARCHITECTURES`: keras-hub `ViTBackbone` arguments that
`MeanPooledViTClassifier.from_architecture` builds (random init): "small" is
timm's ViT-S/16; "tiny" a toy size for the synthetic checks and the tests.
`MEAN_POOLED_VIT_PRESETS`: timm checkpoints, registered with keras-hub's
`register_presets` on `MeanPooledViTClassifier`.
"""

VIT_LAYER_NORM_EPS = 1e-6  # timm's ViTs

MEAN_POOLED_VIT_ARCHITECTURES = {
    "tiny": dict(patch_size=8, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128,
                 layer_norm_epsilon=VIT_LAYER_NORM_EPS),
    "small": dict(patch_size=16, num_layers=12, num_heads=6, hidden_dim=384, mlp_dim=1536,
                  layer_norm_epsilon=VIT_LAYER_NORM_EPS),
}

MEAN_POOLED_VIT_PRESETS = {
    "vit_small_augreg_in21k_ft_in1k": {
        "metadata": {
            "description": "timm ViT-S/16, ImageNet-21k pre-trained, ImageNet-1k fine-tuned "
            "(the baseline recipe's backbone).",
            "params": 22_000_000,
            "path": "vit",
        },
        "kaggle_handle": "hf://timm/vit_small_patch16_224.augreg_in21k_ft_in1k",
    },
}

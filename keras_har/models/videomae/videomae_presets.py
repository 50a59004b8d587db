"""VideoMAE's named architecture sizes and its checkpoints.

`VIDEOMAE_ARCHITECTURES`: the encoder sizes `VideoMAEBackbone.from_architecture`
builds (random init): "small" / "base" / "large" / "huge" are VideoMAE's
ViT-S/B/L/H (patch 16, tubelet 2); "tiny" is a toy size for the synthetic
checks and the tests. `VIDEOMAE_DECODER`: the pre-training decoder's sizes.

`VIDEOMAE_PRESETS`: the checkpoints of MCG-NJU on the Hugging Face Hub,
registered with keras-hub's `register_presets` (so `VideoMAEBackbone.presets`
and `VideoMAEClassifier.presets` list them). The architecture of a checkpoint
comes from its own config.json; the handle is fetched with huggingface_hub.
"""


def _vit(hidden_dim, num_layers, num_heads, mlp_dim, patch_size=16):
    return dict(patch_size=patch_size, tubelet_size=2, hidden_dim=hidden_dim, num_layers=num_layers,
                num_heads=num_heads, mlp_dim=mlp_dim)


VIDEOMAE_ARCHITECTURES = {
    "tiny": _vit(64, 4, 4, 128, patch_size=8),
    "small": _vit(384, 12, 6, 1536),
    "base": _vit(768, 12, 12, 3072),
    "large": _vit(1024, 24, 16, 4096),
    "huge": _vit(1280, 32, 16, 5120),
}
# The decoder of VideoMAE's pre-training (transformers' VideoMAEConfig defaults).
VIDEOMAE_DECODER = dict(decoder_hidden_dim=384, decoder_num_layers=4, decoder_num_heads=6, decoder_mlp_dim=1536)


def _entry(repo, params, description):
    return {
        "metadata": {"description": description, "params": params, "path": "videomae"},
        "kaggle_handle": f"hf://MCG-NJU/{repo}",
    }


S, B, L, H = 22_000_000, 86_000_000, 304_000_000, 632_000_000
VIDEOMAE_PRESETS = {
    # Fine-tuned classifiers (a head is included).
    "videomae_small_kinetics": _entry("videomae-small-finetuned-kinetics", S, "ViT-S, fine-tuned on Kinetics-400 (400 classes)"),
    "videomae_base_kinetics": _entry("videomae-base-finetuned-kinetics", B, "ViT-B, fine-tuned on Kinetics-400 (400 classes); the reference protocol's starting point"),
    "videomae_base_short_kinetics": _entry("videomae-base-short-finetuned-kinetics", B, "ViT-B, shorter pre-training, fine-tuned on Kinetics-400"),
    "videomae_large_kinetics": _entry("videomae-large-finetuned-kinetics", L, "ViT-L, fine-tuned on Kinetics-400"),
    "videomae_huge_kinetics": _entry("videomae-huge-finetuned-kinetics", H, "ViT-H, fine-tuned on Kinetics-400"),
    "videomae_small_ssv2": _entry("videomae-small-finetuned-ssv2", S, "ViT-S, fine-tuned on Something-Something-v2 (174 classes)"),
    "videomae_base_ssv2": _entry("videomae-base-finetuned-ssv2", B, "ViT-B, fine-tuned on Something-Something-v2 (174 classes)"),
    "videomae_base_short_ssv2": _entry("videomae-base-short-finetuned-ssv2", B, "ViT-B, shorter pre-training, fine-tuned on SSv2"),
    # Self-supervised pre-training only (VideoMAEForPreTraining: no head).
    "videomae_base_pretrained_kinetics": _entry("videomae-base", B, "ViT-B, masked pre-training on Kinetics-400, no head"),
    "videomae_base_short_pretrained_kinetics": _entry("videomae-base-short", B, "ViT-B, shorter masked pre-training on Kinetics-400, no head"),
    "videomae_large_pretrained_kinetics": _entry("videomae-large", L, "ViT-L, masked pre-training on Kinetics-400, no head"),
    "videomae_base_pretrained_ssv2": _entry("videomae-base-ssv2", B, "ViT-B, masked pre-training on SSv2, no head"),
    "videomae_base_short_pretrained_ssv2": _entry("videomae-base-short-ssv2", B, "ViT-B, shorter masked pre-training on SSv2, no head"),
}

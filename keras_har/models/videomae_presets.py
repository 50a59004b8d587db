"""Known VideoMAE checkpoints (MCG-NJU, on the Hugging Face Hub).

`VideoMAEClassifier.from_preset("videomae_base_kinetics")` resolves the name
through this table to its `hf://` handle; the architecture comes from the
checkpoint's own config.json.
"""

_SIZES = {
    "small": dict(hidden_size=384, num_layers=12, num_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096),
    "huge": dict(hidden_size=1280, num_layers=32, num_heads=16, intermediate_size=5120),
}


def _entry(repo, size, dataset, description):
    return {
        "handle": f"hf://MCG-NJU/{repo}",
        "description": description,
        "dataset": dataset,
        "config": dict(_SIZES[size], image_size=224, patch_size=16, num_frames=16, tubelet_size=2),
    }


VIDEOMAE_PRESETS = {
    # Fine-tuned classifiers (a head is included).
    "videomae_small_kinetics": _entry("videomae-small-finetuned-kinetics", "small", "kinetics400", "ViT-S, fine-tuned on Kinetics-400 (400 classes)"),
    "videomae_base_kinetics": _entry("videomae-base-finetuned-kinetics", "base", "kinetics400", "ViT-B, fine-tuned on Kinetics-400 (400 classes); the seed's phase-3 start"),
    "videomae_base_short_kinetics": _entry("videomae-base-short-finetuned-kinetics", "base", "kinetics400", "ViT-B, shorter pre-training, fine-tuned on Kinetics-400"),
    "videomae_large_kinetics": _entry("videomae-large-finetuned-kinetics", "large", "kinetics400", "ViT-L, fine-tuned on Kinetics-400"),
    "videomae_huge_kinetics": _entry("videomae-huge-finetuned-kinetics", "huge", "kinetics400", "ViT-H, fine-tuned on Kinetics-400"),
    "videomae_small_ssv2": _entry("videomae-small-finetuned-ssv2", "small", "ssv2", "ViT-S, fine-tuned on Something-Something-v2 (174 classes)"),
    "videomae_base_ssv2": _entry("videomae-base-finetuned-ssv2", "base", "ssv2", "ViT-B, fine-tuned on Something-Something-v2 (174 classes)"),
    "videomae_base_short_ssv2": _entry("videomae-base-short-finetuned-ssv2", "base", "ssv2", "ViT-B, shorter pre-training, fine-tuned on SSv2"),
    # Self-supervised pre-training only (VideoMAEForPreTraining: no head).
    "videomae_base_pretrained_kinetics": _entry("videomae-base", "base", "kinetics400", "ViT-B, masked pre-training on Kinetics-400, no head"),
    "videomae_base_short_pretrained_kinetics": _entry("videomae-base-short", "base", "kinetics400", "ViT-B, shorter masked pre-training on Kinetics-400, no head"),
    "videomae_large_pretrained_kinetics": _entry("videomae-large", "large", "kinetics400", "ViT-L, masked pre-training on Kinetics-400, no head"),
    "videomae_base_pretrained_ssv2": _entry("videomae-base-ssv2", "base", "ssv2", "ViT-B, masked pre-training on SSv2, no head"),
    "videomae_base_short_pretrained_ssv2": _entry("videomae-base-short-ssv2", "base", "ssv2", "ViT-B, shorter masked pre-training on SSv2, no head"),
}

"""VideoMAE checkpoints of MCG-NJU on the Hugging Face Hub, registered with
keras-hub's `register_presets` (so `VideoMAEBackbone.presets` and
`VideoMAEClassifier.presets` list them). The architecture comes from each
checkpoint's own config.json; the handle is fetched with huggingface_hub."""


def _entry(repo, params, description):
    return {
        "metadata": {"description": description, "params": params, "path": "videomae"},
        "kaggle_handle": f"hf://MCG-NJU/{repo}",
    }


S, B, L, H = 22_000_000, 86_000_000, 304_000_000, 632_000_000
VIDEOMAE_PRESETS = {
    # Fine-tuned classifiers (a head is included).
    "videomae_small_kinetics": _entry("videomae-small-finetuned-kinetics", S, "ViT-S, fine-tuned on Kinetics-400 (400 classes)"),
    "videomae_base_kinetics": _entry("videomae-base-finetuned-kinetics", B, "ViT-B, fine-tuned on Kinetics-400 (400 classes); the seed's phase-3 start"),
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

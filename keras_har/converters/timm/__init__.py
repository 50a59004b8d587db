"""Converters of timm checkpoints (hub directories and bare state-dict files)."""

"""Mixup and CutMix on a batch, as timm's `Mixup` in batch mode.

Sample i is mixed with sample B-1-i (the flipped batch). With both alphas set,
CutMix is chosen with probability `switch_prob`. CutMix's box is the same for
every frame of a clip, and `lam` is corrected to the exact box area.
"""

import numpy as np


def one_hot(labels, num_classes, smoothing=0.0):
    off = smoothing / num_classes
    out = np.full((len(labels), num_classes), off, dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0 - smoothing + off
    return out


def cutmix_box(height, width, lam, rng):
    """A box covering about (1 - lam) of the frame: (y0, y1, x0, x1)."""
    cut = np.sqrt(1.0 - lam)
    ch, cw = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    y0, y1 = np.clip(cy - ch // 2, 0, height), np.clip(cy + ch // 2, 0, height)
    x0, x1 = np.clip(cx - cw // 2, 0, width), np.clip(cx + cw // 2, 0, width)
    return int(y0), int(y1), int(x0), int(x1)


def mix_batch(x, y, rng, mixup_alpha=0.8, cutmix_alpha=0.0, prob=1.0, switch_prob=0.5):
    """Mix a batch `x` (B, ..., H, W, C) with soft targets `y` (B, classes).

    Returns (x_mixed, y_mixed, lam, mode) with mode in {"mixup", "cutmix", None}.
    """
    if (mixup_alpha <= 0 and cutmix_alpha <= 0) or rng.random() >= prob:
        return x, y, 1.0, None
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    flipped_x, flipped_y = x[::-1], y[::-1]
    if use_cutmix:
        lam = float(rng.beta(cutmix_alpha, cutmix_alpha))
        height, width = x.shape[-3:-1]
        y0, y1, x0, x1 = cutmix_box(height, width, lam, rng)
        x = x.copy()
        x[..., y0:y1, x0:x1, :] = flipped_x[..., y0:y1, x0:x1, :]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
        mode = "cutmix"
    else:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        mixed = np.empty(x.shape, np.float32)
        for i in range(len(x)):  # per sample: temporaries of one clip, not of the batch
            np.multiply(x[i], np.float32(lam), out=mixed[i])
            mixed[i] += flipped_x[i] * np.float32(1.0 - lam)
        x = mixed
        mode = "mixup"
    y = y * np.float32(lam) + flipped_y * np.float32(1.0 - lam)
    return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False), lam, mode

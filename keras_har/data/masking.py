"""VideoMAE's token masks, drawn with numpy in the loader.

A mask is a boolean vector over the `(frames // tubelet) * (height // patch) *
(width // patch)` tokens in the encoder's order (time, row, column), `True`
where the token is masked: transformers' `bool_masked_pos`. Every mask of a
given shape and ratio masks the same number of tokens, so batches stack and
the model's shapes are static (transformers requires the same).

* `"tube"` (VideoMAE's default): one spatial mask shared by every temporal
  position, `int(ratio * tokens_per_frame)` tokens masked per frame, as the
  official `TubeMaskingGenerator`.
* `"random"`: `int(ratio * tokens)` tokens anywhere, as the official
  `RandomMaskingGenerator`.
"""

import numpy as np

MASKINGS = ("tube", "random")


def token_grid(num_frames, image_size, patch_size, tubelet_size):
    """(temporal positions, spatial tokens per frame) of a clip."""
    height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
    return num_frames // tubelet_size, (height // patch_size) * (width // patch_size)


def num_masked_tokens(grid, mask_ratio, masking="tube"):
    """How many tokens a mask of `mask_ratio` hides, for a `token_grid`."""
    if masking not in MASKINGS:
        raise ValueError(f"masking must be one of {MASKINGS}, got {masking!r}.")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}.")
    temporal, spatial = grid
    if masking == "tube":
        count = int(mask_ratio * spatial) * temporal
    else:
        count = int(mask_ratio * temporal * spatial)
    if count < 1:
        raise ValueError(
            f"mask_ratio {mask_ratio} masks no token of a {temporal}x{spatial} token grid "
            f"with {masking} masking."
        )
    return count


def draw_mask(rng, grid, mask_ratio, masking="tube"):
    """One boolean mask `(tokens,)` drawn from the numpy Generator `rng`."""
    temporal, spatial = grid
    count = num_masked_tokens(grid, mask_ratio, masking)
    if masking == "tube":
        frame = np.zeros(spatial, dtype=bool)
        frame[rng.permutation(spatial)[: count // temporal]] = True
        return np.tile(frame, temporal)
    mask = np.zeros(temporal * spatial, dtype=bool)
    mask[rng.permutation(temporal * spatial)[:count]] = True
    return mask


class MaskGenerator:
    """Draws the masks of one model's clips: `generator(rng)` -> `(tokens,)` bool."""

    def __init__(self, num_frames, image_size, patch_size, tubelet_size, mask_ratio=0.9, masking="tube"):
        self.grid = token_grid(num_frames, image_size, patch_size, tubelet_size)
        self.mask_ratio = float(mask_ratio)
        self.masking = masking
        self.num_masked = num_masked_tokens(self.grid, self.mask_ratio, masking)

    @property
    def num_tokens(self):
        return self.grid[0] * self.grid[1]

    def __call__(self, rng):
        return draw_mask(rng, self.grid, self.mask_ratio, self.masking)

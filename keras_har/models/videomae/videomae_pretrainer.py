"""VideoMAE masked-autoencoder pre-training: the Task on `VideoMAEBackbone`.

transformers' `VideoMAEForPreTraining` (and the MCG-NJU original), with the
encoder run on the visible tokens only:

1. the backbone's `embed` (tubelet embedding and fixed position table) on
   every token;
2. the visible tokens gathered (`bool_masked_pos` False), in their order, and
   only they go through the backbone's `encode` (its blocks and final norm);
3. `encoder_to_decoder` (no bias), then the decoder input: the visible tokens
   followed by a learned `mask_token` per masked position, each plus the
   decoder-width sinusoidal table at its position;
4. decoder blocks, the last `num_masked` tokens, `decoder_norm` and
   `decoder_head`: logits `(batch, num_masked, tubelet * patch * patch * 3)`,
   each masked tubelet's pixels in transformers' order (t, row, col, channel).

The loss (`compute_loss`, so `model.fit` needs no custom train step) is the
mean squared error against the masked tubelets of the un-normalised frames,
per-patch normalised when `norm_pix_loss` (mean and unbiased std over each
tubelet's pixels, per channel), exactly as transformers computes it. Inputs
are normalised with the model's `image_mean` / `image_std`, which the loss
undoes.

Inputs are a dict: `videos` `(batch, frames, height, width, 3)` float and
`bool_masked_pos` `(batch, tokens)` bool. The model's own graph (`fit`,
`model(inputs)`) is built for masks hiding exactly `num_masked` tokens per
sample (the mask a loader draws with `mask_generator()`);
`compute_loss_and_logits` and `reconstruct` take a mask of any count that is
the same in every sample, as transformers does, through a graph built for
that count on the same layers (built once, then reused).
"""


import keras
import numpy as np
from keras import layers, ops
from keras_hub.models import Task

from keras_har.data.masking import MaskGenerator
from keras_har.layers.masked_tokens import GatherTokens, MaskedTokenSplit, MaskTokenFill, gather_tokens, split_indices
from keras_har.models.videomae.videomae_backbone import VideoMAEBackbone, rename_legacy_arguments
from keras_har.models.videomae.videomae_layers import transformer_blocks
from keras_har.models.videomae.videomae_presets import VIDEOMAE_DECODER
from keras_har.models.videomae.videomae_video_converter import VideoMAEVideoConverter
from keras_har.utils import preset_utils

# transformers' decoder norm is `nn.LayerNorm(decoder_hidden_size)`: torch's default eps.
DECODER_NORM_EPS = 1e-5
PATCH_STD_EPS = 1e-6
# Argument names of configs saved by earlier versions -> today's.
LEGACY_CONFIG_NAMES = {
    "decoder_hidden_size": "decoder_hidden_dim",
    "decoder_num_hidden_layers": "decoder_num_layers",
    "decoder_num_attention_heads": "decoder_num_heads",
    "decoder_intermediate_size": "decoder_mlp_dim",
}


def patchify(frames, tubelet_size, patch_size):
    """`(B, T, H, W, C)` -> `(B, tokens, tubelet * patch * patch, C)` in token order."""
    _, t, h, w, c = frames.shape
    x = ops.reshape(
        frames,
        (-1, t // tubelet_size, tubelet_size, h // patch_size, patch_size, w // patch_size, patch_size, c),
    )
    x = ops.transpose(x, (0, 1, 3, 5, 2, 4, 6, 7))
    tokens = (t // tubelet_size) * (h // patch_size) * (w // patch_size)
    return ops.reshape(x, (-1, tokens, tubelet_size * patch_size * patch_size, c))


def unpatchify(patches, video_shape, tubelet_size, patch_size):
    """Inverse of `patchify`: `(B, tokens, t * p * p, C)` -> `(B, T, H, W, C)`."""
    t, h, w, c = video_shape
    x = ops.reshape(
        patches,
        (-1, t // tubelet_size, h // patch_size, w // patch_size, tubelet_size, patch_size, patch_size, c),
    )
    x = ops.transpose(x, (0, 1, 4, 2, 5, 3, 6, 7))
    return ops.reshape(x, (-1, t, h, w, c))


def patch_statistics(patches):
    """Per-tubelet, per-channel mean and unbiased std + eps (transformers' norm_pix)."""
    n = patches.shape[-2]
    mean = ops.mean(patches, axis=-2, keepdims=True)
    var = ops.sum(ops.square(patches - mean), axis=-2, keepdims=True) / (n - 1)
    return mean, ops.sqrt(var) + PATCH_STD_EPS


class _GraphsByCount:
    """The pre-trainer's graphs for other masked-token counts, each sharing every
    layer (so every weight) with it. A plain holder, neither a layer nor a
    container, so that Keras neither tracks nor saves these graphs."""

    def __init__(self):
        self.graphs = {}


@keras.saving.register_keras_serializable(package="keras_har")
class VideoMAEPretrainer(preset_utils.InferenceTaskWeights, Task):
    """VideoMAE masked-autoencoder pre-training on a `VideoMAEBackbone`.

    Args:
        backbone: a `VideoMAEBackbone` (the encoder being pre-trained).
        decoder_hidden_dim, decoder_num_layers, decoder_num_heads,
            decoder_mlp_dim: the decoder's sizes (VideoMAE's: 384, 4, 6, 1536,
            `VIDEOMAE_DECODER`).
        mask_ratio: fraction of tokens masked (0.9; the official UCF101 script 0.75).
        masking: "tube" (one spatial mask for every temporal position) or "random".
        norm_pix_loss: regress per-patch normalised pixels (True, VideoMAE's
            default) or raw pixels in [0, 1].
        image_mean, image_std: the normalisation the input videos have had
            (unset: `VideoMAEVideoConverter`'s, ImageNet's).

    Example:
    ```python
    model = VideoMAEPretrainer.from_preset("hf://MCG-NJU/videomae-base")
    loss, logits = model.compute_loss_and_logits(videos, bool_masked_pos)
    model.fit(loader)  # batches of {"videos": ..., "bool_masked_pos": ...}
    ```
    """

    backbone_cls = VideoMAEBackbone

    def __init__(
        self,
        backbone,
        decoder_hidden_dim=VIDEOMAE_DECODER["decoder_hidden_dim"],
        decoder_num_layers=VIDEOMAE_DECODER["decoder_num_layers"],
        decoder_num_heads=VIDEOMAE_DECODER["decoder_num_heads"],
        decoder_mlp_dim=VIDEOMAE_DECODER["decoder_mlp_dim"],
        mask_ratio=0.9,
        masking="tube",
        norm_pix_loss=True,
        image_mean=None,
        image_std=None,
        preprocessor=None,
        **kwargs,
    ):
        if image_mean is None and image_std is None:
            image_mean, image_std = VideoMAEVideoConverter.default_mean, VideoMAEVideoConverter.default_std
        masks = MaskGenerator(
            backbone.num_frames, backbone.image_size, backbone.patch_size,
            backbone.tubelet_size, mask_ratio, masking,
        )
        num_tokens, num_masked = masks.num_tokens, masks.num_masked
        policy = backbone.dtype_policy
        t, p, c = backbone.tubelet_size, backbone.patch_size, backbone.num_channels

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.token_split = MaskedTokenSplit(num_masked, name="token_split", dtype=policy)
        self.encoder_to_decoder = layers.Dense(
            decoder_hidden_dim, use_bias=False, name="encoder_to_decoder", dtype=policy
        )
        self.mask_token_fill = MaskTokenFill(num_tokens, name="mask_token_fill", dtype=policy)
        self.decoder_layers = transformer_blocks(
            decoder_num_layers,
            name="decoder_layer",
            dtype=policy,
            hidden_dim=decoder_hidden_dim,
            num_heads=decoder_num_heads,
            mlp_dim=decoder_mlp_dim,
            activation=backbone.activation,
            use_qv_bias=backbone.use_qv_bias,
            layer_norm_epsilon=backbone.layer_norm_epsilon,
        )
        self.decoder_norm = layers.LayerNormalization(epsilon=DECODER_NORM_EPS, name="decoder_norm", dtype=policy)
        self.decoder_head = layers.Dense(t * p * p * c, name="decoder_head", dtype=policy)

        # === Functional model ===
        inputs, logits = self._masked_graph(num_masked, self.token_split)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        self.decoder_hidden_dim = decoder_hidden_dim
        self.decoder_num_layers = decoder_num_layers
        self.decoder_num_heads = decoder_num_heads
        self.decoder_mlp_dim = decoder_mlp_dim
        self.mask_ratio = float(mask_ratio)
        self.masking = masking
        self.norm_pix_loss = bool(norm_pix_loss)
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)
        self.num_tokens = num_tokens
        self.num_masked = num_masked
        self._other_counts = _GraphsByCount()

    def _masked_graph(self, num_masked, token_split):
        """(inputs, logits) of the encoder-decoder graph for masks that hide
        `num_masked` tokens per sample, on this model's layers."""
        backbone = self.backbone
        policy = backbone.dtype_policy
        num_tokens = self.mask_token_fill.num_tokens
        videos = keras.Input(shape=backbone.input.shape[1:], name="videos")
        bool_masked_pos = keras.Input(shape=(num_tokens,), dtype="bool", name="bool_masked_pos")
        x = backbone.embed(videos)
        visible_indices, masked_indices = token_split(bool_masked_pos)
        x = GatherTokens(name="visible_tokens", dtype=policy)(x, visible_indices)
        x = backbone.encode(x)
        x = self.encoder_to_decoder(x)
        x = self.mask_token_fill(x, visible_indices, masked_indices)
        for block in self.decoder_layers:
            x = block(x)
        x = x[:, num_tokens - num_masked :]
        logits = self.decoder_head(self.decoder_norm(x))
        return {"videos": videos, "bool_masked_pos": bool_masked_pos}, logits

    def _graph_for(self, num_masked):
        """The model (this one, or one sharing its weights) for masks hiding
        `num_masked` tokens per sample; built on first use, then reused."""
        if num_masked == self.num_masked:
            return self
        graphs = self._other_counts.graphs
        if num_masked not in graphs:
            split = MaskedTokenSplit(num_masked, name=f"token_split_{num_masked}", dtype=self.dtype_policy)
            inputs, logits = self._masked_graph(num_masked, split)
            graphs[num_masked] = keras.Model(inputs=inputs, outputs=logits, name=f"{self.name}_{num_masked}_masked")
        return graphs[num_masked]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "decoder_hidden_dim": self.decoder_hidden_dim,
                "decoder_num_layers": self.decoder_num_layers,
                "decoder_num_heads": self.decoder_num_heads,
                "decoder_mlp_dim": self.decoder_mlp_dim,
                "mask_ratio": self.mask_ratio,
                "masking": self.masking,
                "norm_pix_loss": self.norm_pix_loss,
                "image_mean": list(self.image_mean),
                "image_std": list(self.image_std),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Also reads configs saved under the earlier, transformers-style
        decoder argument names (`decoder_hidden_size`, ...)."""
        return super().from_config(rename_legacy_arguments(config, LEGACY_CONFIG_NAMES))

    def compile(self, optimizer="auto", **kwargs):
        """`"auto"`: AdamW as the official pre-training (lr 1.5e-4, betas 0.9/0.95,
        weight decay 0.05). The loss is the model's own (`compute_loss`)."""
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(1.5e-4, weight_decay=0.05, beta_1=0.9, beta_2=0.95)
        super().compile(optimizer=optimizer, **kwargs)

    # === Masks, targets and loss ===

    def mask_generator(self):
        """The `MaskGenerator` a loader draws this model's masks with."""
        b = self.backbone
        return MaskGenerator(b.num_frames, b.image_size, b.patch_size, b.tubelet_size, self.mask_ratio, self.masking)

    def pixel_frames(self, videos):
        """Un-normalised frames (in [0, 1] for RGB); other channel counts as given."""
        videos = ops.cast(videos, "float32")
        if self.backbone.num_channels != 3:
            return videos
        return videos * ops.array(self.image_std, "float32") + ops.array(self.image_mean, "float32")

    def _target_patches(self, videos):
        """(patches `(B, N, t*p*p, C)` of the pixel frames, the regressed ones)."""
        b = self.backbone
        if not self.norm_pix_loss and b.num_channels != 3:
            raise ValueError("Can't un-normalise non-RGB videos; use norm_pix_loss=True.")
        patches = patchify(self.pixel_frames(videos), b.tubelet_size, b.patch_size)
        if not self.norm_pix_loss:
            return patches, patches
        mean, std = patch_statistics(patches)
        return patches, (patches - mean) / std

    def reconstruction_target(self, videos, bool_masked_pos, num_masked=None):
        """What the decoder regresses: `(B, num_masked, t*p*p*C)`, no gradient.
        `num_masked`: the tokens each sample of the mask hides (default the
        model's own count)."""
        _, target = self._target_patches(videos)
        target = ops.reshape(target, (-1, self.num_tokens, target.shape[-2] * target.shape[-1]))
        _, masked = split_indices(bool_masked_pos, num_masked or self.num_masked)
        return ops.stop_gradient(gather_tokens(target, masked))

    def reconstruction_loss(self, videos, bool_masked_pos, logits):
        """Mean squared error over the masked tubelets (transformers' loss);
        the count of masked tokens is the logits' (static) length."""
        target = self.reconstruction_target(videos, bool_masked_pos, logits.shape[1])
        return ops.mean(ops.square(ops.cast(logits, "float32") - target))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.reconstruction_loss(x["videos"], x["bool_masked_pos"], y_pred)
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), loss.dtype)
        return loss

    def check_mask(self, bool_masked_pos):
        """The concrete mask as a numpy bool array and the count of tokens it
        hides per sample; raise unless that count is the same in every sample
        (transformers' `VideoMAEForPreTraining` requires the same) and leaves
        at least one token visible and one masked."""
        mask = np.asarray(ops.convert_to_numpy(bool_masked_pos)).astype(bool)
        if mask.ndim != 2 or mask.shape[1] != self.num_tokens:
            raise ValueError(
                f"bool_masked_pos must be (batch, {self.num_tokens}), got {mask.shape}."
            )
        counts = sorted(set(mask.sum(axis=1).tolist()))
        if len(counts) != 1:
            raise ValueError(
                f"bool_masked_pos masks {counts} tokens per sample; every sample of a batch "
                f"must mask the same number of its {self.num_tokens} tokens."
            )
        if not 0 < counts[0] < self.num_tokens:
            raise ValueError(
                f"bool_masked_pos masks {counts[0]} of {self.num_tokens} tokens per sample; "
                "at least one must be masked and one visible."
            )
        return mask, counts[0]

    def compute_loss_and_logits(self, videos, bool_masked_pos, training=False):
        """`(loss, logits)` for normalised `videos` and a `bool_masked_pos` as in
        transformers (any count of masked tokens, the same in every sample);
        logits `(batch, masked tokens, t*p*p*C)` in transformers' order."""
        mask, count = self.check_mask(bool_masked_pos)
        logits = self._graph_for(count)({"videos": videos, "bool_masked_pos": mask}, training=training)
        return self.reconstruction_loss(videos, mask, logits), logits

    def reconstruct(self, videos, bool_masked_pos):
        """(pixel frames, masked input, reconstruction), each `(B, T, H, W, C)` numpy
        in pixel space: masked tubelets blacked out in the input and replaced by the
        prediction (de-normalised with the true patch's statistics under
        `norm_pix_loss`, as the official visualisation does) in the reconstruction."""
        mask, count = self.check_mask(bool_masked_pos)
        logits = self._graph_for(count)({"videos": videos, "bool_masked_pos": mask}, training=False)
        patches, _ = self._target_patches(videos)
        mean, std = (ops.convert_to_numpy(s) for s in patch_statistics(patches))
        patches = ops.convert_to_numpy(patches)
        predicted = ops.convert_to_numpy(ops.cast(logits, "float32")).reshape(-1, *patches.shape[2:])
        if self.norm_pix_loss:
            predicted = predicted * std[mask] + mean[mask]
        masked_input = patches.copy()
        masked_input[mask] = 0.0
        recon = patches.copy()
        recon[mask] = predicted
        b = self.backbone
        shape = tuple(videos.shape[1:])
        return tuple(
            ops.convert_to_numpy(unpatchify(a, shape, b.tubelet_size, b.patch_size))
            for a in (patches, masked_input, recon)
        )

    # === Presets ===

    def no_weight_decay(self):
        """Variable-path patterns never weight-decayed (besides 0-/1-D ones):
        the backbone's, and the learned mask token (as the official script)."""
        return tuple(self.backbone.no_weight_decay()) + (r"mask_token",)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A known name, `hf://org/name`, a transformers `VideoMAEForPreTraining`
        directory (encoder and decoder; a headless one gets a new decoder) or a
        directory written by `save_to_preset`. `kwargs` override the Task's
        arguments (e.g. `mask_ratio`, `norm_pix_loss`). The format is decided by
        `keras_har.utils.preset_utils`, as for every model here."""
        return preset_utils.task_from_preset(cls, preset, load_weights=load_weights, **kwargs)

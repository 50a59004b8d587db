"""VideoMAE pre-training (masked autoencoder) matches transformers.

The oracle is transformers' `VideoMAEForPreTraining` on the same perturbed
weights and the same `bool_masked_pos`: loss, decoder logits and the gradients
of the loss (torch autograd) must agree.
"""

import json
import logging

import keras
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_videomae import make_checkpoint, videos_for

from keras_har.data.masking import MaskGenerator, draw_mask, num_masked_tokens, token_grid
from keras_har.models import VideoMAEBackbone, VideoMAEClassifier, VideoMAEPretrainer
from keras_har.utils.preset_utils import CheckpointError

ATOL = 1e-4
GRAD_RTOL = 1e-4

CASES = {
    "tube_norm_pix_non_square": dict(image_size=[32, 48]),
    "raw_pixels_final_norm": dict(norm_pix_loss=False, use_mean_pooling=False),
    "tubelet_1": dict(tubelet_size=1, num_frames=2),
    "random_masking_75": dict(image_size=[48, 32], masking="random", mask_ratio=0.75),
    "tubelet_1_raw_random": dict(tubelet_size=1, num_frames=2, norm_pix_loss=False, masking="random"),
}
TASK_KEYS = ("masking", "mask_ratio")


def split_case(case):
    overrides = dict(CASES[case])
    task = {k: overrides.pop(k) for k in TASK_KEYS if k in overrides}
    return overrides, task


def draw_masks(model, batch=2, seed=0):
    generator = model.mask_generator()
    return np.stack([generator(np.random.default_rng([seed, i])) for i in range(batch)])


def reference(hf, pt_x, mask):
    with torch.no_grad():
        out = hf(pixel_values=pt_x, bool_masked_pos=torch.from_numpy(mask))
    return float(out.loss), out.logits.numpy()


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_and_logits_match_transformers(tmp_path, case):
    overrides, task = split_case(case)
    hf = make_checkpoint(tmp_path, kind="pretraining", **overrides)
    pt_x, x = videos_for(hf.config)
    model = VideoMAEPretrainer.from_preset(tmp_path, **task)
    assert model.norm_pix_loss == hf.config.norm_pix_loss
    mask = draw_masks(model)
    if task.get("masking") != "random":
        per_frame = mask.reshape(2, model.backbone.num_frames // model.backbone.tubelet_size, -1)
        assert (per_frame == per_frame[:, :1]).all()  # a tube: the same at every time
    ref_loss, ref_logits = reference(hf, pt_x, mask)
    loss, logits = model.compute_loss_and_logits(x, mask)
    assert tuple(logits.shape) == ref_logits.shape
    np.testing.assert_allclose(to_numpy(logits), ref_logits, atol=ATOL, rtol=0)
    np.testing.assert_allclose(float(to_numpy(loss)), ref_loss, atol=ATOL, rtol=ATOL)


def loss_gradients(model, x, mask, variables):
    """d loss / d variables with the backend's own autodiff (test-only helper)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        others = [v.value for v in model.non_trainable_variables]

        def loss_fn(values):
            logits, _ = model.stateless_call(values, others, {"videos": x, "bool_masked_pos": mask})
            return model.reconstruction_loss(x, mask, logits)

        grads = jax.grad(loss_fn)(trainable)
        index = {id(v): i for i, v in enumerate(model.trainable_variables)}
        return [np.asarray(grads[index[id(v)]]) for v in variables]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, _ = model.compute_loss_and_logits(x, mask)
        return [g.numpy() for g in tape.gradient(loss, [v.value for v in variables])]
    loss, _ = model.compute_loss_and_logits(x, mask)
    grads = torch.autograd.grad(loss, [v.value for v in variables])
    return [g.detach().cpu().numpy() for g in grads]


@pytest.mark.parametrize("norm_pix_loss", [True, False], ids=["norm_pix", "raw"])
def test_gradients_match_torch_autograd(tmp_path, norm_pix_loss):
    hf = make_checkpoint(
        tmp_path, kind="pretraining", use_mean_pooling=False, image_size=[32, 48], norm_pix_loss=norm_pix_loss
    )
    pt_x, x = videos_for(hf.config)
    model = VideoMAEPretrainer.from_preset(tmp_path)
    mask = draw_masks(model)
    hf.zero_grad()
    hf(pixel_values=pt_x, bool_masked_pos=torch.from_numpy(mask)).loss.backward()
    named = dict(hf.named_parameters())

    def grad(key):
        return named[key].grad.numpy()

    encoder, decoder = model.backbone.transformer_layers[0], model.decoder_layers[0]
    pairs = [
        (model.backbone.patch_embedding.kernel,
         grad("videomae.embeddings.patch_embeddings.projection.weight").transpose(2, 3, 4, 1, 0)),
        (encoder.fc1.kernel, grad("videomae.encoder.layer.0.intermediate.dense.weight").T),
        (encoder.attention.q_bias, grad("videomae.encoder.layer.0.attention.attention.query.bias")),
        (model.backbone.final_norm.gamma, grad("videomae.layernorm.weight")),
        (model.encoder_to_decoder.kernel, grad("encoder_to_decoder.weight").T),
        (model.mask_token_fill.mask_token, grad("mask_token")),
        (decoder.fc2.kernel, grad("decoder.decoder_layers.0.output.dense.weight").T),
        (decoder.norm1.gamma, grad("decoder.decoder_layers.0.layernorm_before.weight")),
        (model.decoder_head.bias, grad("decoder.head.bias")),
    ]
    ours = loss_gradients(model, x, mask, [v for v, _ in pairs])
    for (variable, expected), got in zip(pairs, ours):
        assert np.abs(expected).max() > 0, variable.path
        error = np.linalg.norm(got - expected) / np.linalg.norm(expected)
        assert error < GRAD_RTOL, f"{variable.path}: relative gradient error {error:.2e}"


def test_encoder_never_sees_masked_tokens(tmp_path):
    """Changing the pixels of masked tubelets changes the target, not the logits;
    and the encoder blocks run on the visible tokens only."""
    hf = make_checkpoint(tmp_path, kind="pretraining")
    _, x = videos_for(hf.config)
    model = VideoMAEPretrainer.from_preset(tmp_path)
    mask = draw_masks(model)
    t, p = model.backbone.tubelet_size, model.backbone.patch_size
    grid = mask.reshape(2, x.shape[1] // t, x.shape[2] // p, x.shape[3] // p)
    pixel_mask = grid.repeat(t, 1).repeat(p, 2).repeat(p, 3)[..., None]
    noise = np.random.default_rng(1).normal(size=x.shape)
    changed = np.where(pixel_mask, x + noise, x).astype("float32")
    loss_a, logits_a = model.compute_loss_and_logits(x, mask)
    loss_b, logits_b = model.compute_loss_and_logits(changed, mask)
    np.testing.assert_allclose(to_numpy(logits_a), to_numpy(logits_b), atol=1e-5)
    assert abs(float(to_numpy(loss_a)) - float(to_numpy(loss_b))) > 1e-3
    visible = model.num_tokens - model.num_masked
    block = model.backbone.transformer_layers[0]
    shapes = {tuple(node.output_tensors[0].shape) for node in block._inbound_nodes}
    assert (None, visible, model.backbone.hidden_dim) in shapes


def test_masks():
    grid = token_grid(16, 224, 16, 2)
    assert grid == (8, 196)
    assert num_masked_tokens(grid, 0.9) == 176 * 8  # int(0.9 * 196) per frame
    assert num_masked_tokens(grid, 0.9, "random") == int(0.9 * 8 * 196)
    rng = np.random.default_rng(0)
    tube = draw_mask(rng, grid, 0.75).reshape(8, 196)
    assert (tube == tube[0]).all() and tube[0].sum() == 147
    random = draw_mask(rng, grid, 0.75, "random")
    assert random.sum() == int(0.75 * 8 * 196) and not (random.reshape(8, 196) == random[:196]).all()
    again = MaskGenerator(16, 224, 16, 2, 0.9)(np.random.default_rng(5))
    np.testing.assert_array_equal(again, MaskGenerator(16, 224, 16, 2, 0.9)(np.random.default_rng(5)))
    with pytest.raises(ValueError, match="masking must be"):
        num_masked_tokens(grid, 0.9, "block")
    with pytest.raises(ValueError, match="masks no token"):
        num_masked_tokens((2, 4), 0.1)


def test_any_mask_count_matches_transformers(tmp_path):
    """A model built for 0.9 takes transformers' masks of another ratio (0.75,
    the official UCF101 setting) and goes back to its own: each count's loss and
    logits are transformers' on the same weights."""
    hf = make_checkpoint(tmp_path, kind="pretraining", image_size=[32, 48])
    pt_x, x = videos_for(hf.config)
    model = VideoMAEPretrainer.from_preset(tmp_path)
    assert model.mask_ratio == 0.9
    b = model.backbone
    masks = {ratio: np.stack([MaskGenerator(b.num_frames, b.image_size, b.patch_size, b.tubelet_size, ratio)(
        np.random.default_rng([ratio == 0.9, i])) for i in range(2)]) for ratio in (0.75, 0.9, 0.5)}
    assert masks[0.75].sum(1).tolist() != [model.num_masked] * 2
    for ratio in (0.9, 0.5, 0.75, 0.75):
        ref_loss, ref_logits = reference(hf, pt_x, masks[ratio])
        loss, logits = model.compute_loss_and_logits(x, masks[ratio])
        assert tuple(logits.shape) == ref_logits.shape
        np.testing.assert_allclose(to_numpy(logits), ref_logits, atol=ATOL, rtol=0)
        np.testing.assert_allclose(float(to_numpy(loss)), ref_loss, atol=ATOL, rtol=ATOL)
    frames, masked_input, recon = model.reconstruct(x, masks[0.75])
    assert recon.shape == frames.shape == x.shape
    # The graphs for other counts are not saved: the preset is the model's own.
    model.save_to_preset(tmp_path / "ours")
    loaded = VideoMAEPretrainer.from_preset(tmp_path / "ours")
    assert len(loaded.weights) == len(model.weights)
    np.testing.assert_array_equal(to_numpy(loaded.compute_loss_and_logits(x, masks[0.75])[1]), to_numpy(logits))


def test_mask_counts_differing_per_sample_are_a_clear_error(tmp_path):
    hf = make_checkpoint(tmp_path, kind="pretraining")
    _, x = videos_for(hf.config)
    model = VideoMAEPretrainer.from_preset(tmp_path)
    mask = draw_masks(model)
    mask[0, np.flatnonzero(mask[0])[0]] = False
    with pytest.raises(ValueError, match=r"masks \[\d+, \d+\] tokens per sample; every sample"):
        model.compute_loss_and_logits(x, mask)
    with pytest.raises(ValueError, match="at least one must be masked"):
        model.compute_loss_and_logits(x, np.zeros_like(mask))


def tiny_pretrainer(**kwargs):
    backbone = VideoMAEBackbone.from_architecture(
        "tiny", image_size=32, num_frames=4, hidden_dim=32, num_layers=1, mlp_dim=64, use_mean_pooling=False,
    )
    return VideoMAEPretrainer(
        backbone, decoder_hidden_dim=16, decoder_num_layers=1,
        decoder_num_heads=2, decoder_mlp_dim=32, **kwargs,
    )


def test_fit_lowers_the_loss():
    model = tiny_pretrainer(mask_ratio=0.75)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.05))
    rng = np.random.default_rng(0)
    # Smooth clips (a gradient per channel): reconstructable from the visible tokens.
    base = np.linspace(-1, 1, 32, dtype="float32")
    videos = np.stack([
        np.broadcast_to(base[None, :, None, None] * rng.normal() + base[None, None, :, None] * rng.normal(),
                        (4, 32, 32, 3)) for _ in range(8)
    ]).astype("float32")
    masks = draw_masks(model, batch=8)
    before = float(to_numpy(model.compute_loss_and_logits(videos, masks)[0]))
    history = model.fit({"videos": videos, "bool_masked_pos": masks}, batch_size=4, epochs=15, verbose=0)
    after = float(to_numpy(model.compute_loss_and_logits(videos, masks)[0]))
    assert np.isfinite(history.history["loss"]).all()
    assert after < 0.7 * before


def test_reconstruct_keeps_visible_pixels():
    model = tiny_pretrainer()
    x = np.random.default_rng(0).normal(size=(2, 4, 32, 32, 3)).astype("float32")
    mask = draw_masks(model)
    frames, masked_input, recon = model.reconstruct(x, mask)
    mean, std = np.array(model.image_mean), np.array(model.image_std)
    np.testing.assert_allclose(frames, x * std + mean, atol=1e-5)
    t, p = model.backbone.tubelet_size, model.backbone.patch_size
    hidden = mask.reshape(2, 2, 4, 4).repeat(t, 1).repeat(p, 2).repeat(p, 3)
    np.testing.assert_array_equal(masked_input[hidden], 0.0)
    np.testing.assert_allclose(recon[~hidden], frames[~hidden], atol=1e-6)
    assert not np.allclose(recon[hidden], frames[hidden])


def test_save_to_preset_round_trip_and_fine_tune(tmp_path):
    hf = make_checkpoint(tmp_path / "hf", kind="pretraining", use_mean_pooling=False)
    pt_x, x = videos_for(hf.config)
    model = VideoMAEPretrainer.from_preset(tmp_path / "hf", mask_ratio=0.75)
    mask = draw_masks(model)
    loss, logits = model.compute_loss_and_logits(x, mask)
    model.save_to_preset(tmp_path / "ours")
    loaded = VideoMAEPretrainer.from_preset(tmp_path / "ours")
    assert loaded.mask_ratio == 0.75 and loaded.num_masked == model.num_masked
    loaded_loss, loaded_logits = loaded.compute_loss_and_logits(x, mask)
    np.testing.assert_array_equal(to_numpy(loaded_logits), to_numpy(logits))
    assert float(to_numpy(loaded_loss)) == float(to_numpy(loss))
    # The pre-trained encoder under a new classification head.
    classifier = VideoMAEClassifier.from_preset(tmp_path / "ours", num_classes=3)
    assert to_numpy(classifier(x)).shape == (2, 3)
    with torch.no_grad():
        expected = hf.videomae(pixel_values=pt_x).last_hidden_state.numpy()
    np.testing.assert_allclose(to_numpy(classifier.backbone(x)), expected, atol=ATOL)


def test_presets_saved_under_the_old_argument_names_still_load(tmp_path):
    model = tiny_pretrainer(mask_ratio=0.5)
    model.save_to_preset(tmp_path)
    # A run directory written before the arguments took keras-hub's names.
    renames = {
        "config.json": {"hidden_dim": "hidden_size", "mlp_dim": "intermediate_size",
                        "activation": "hidden_act", "layer_norm_epsilon": "layer_norm_eps",
                        "dropout_rate": "hidden_dropout"},
        "task.json": {"decoder_hidden_dim": "decoder_hidden_size", "decoder_num_layers": "decoder_num_hidden_layers",
                      "decoder_num_heads": "decoder_num_attention_heads", "decoder_mlp_dim": "decoder_intermediate_size"},
    }
    for name, names in renames.items():
        saved = json.loads((tmp_path / name).read_text())
        config = saved["config"]
        if name == "task.json":
            backbone = config["backbone"]["config"]
            config["backbone"]["config"] = {renames["config.json"].get(k, k): v for k, v in backbone.items()}
        saved["config"] = {names.get(k, k): v for k, v in config.items()}
        assert set(names.values()) <= set(saved["config"])
        (tmp_path / name).write_text(json.dumps(saved))
    loaded = VideoMAEPretrainer.from_preset(tmp_path)
    assert (loaded.decoder_hidden_dim, loaded.decoder_num_layers, loaded.backbone.hidden_dim) == (16, 1, 32)
    x = np.random.default_rng(0).normal(size=(2, 4, 32, 32, 3)).astype("float32")
    mask = draw_masks(model)
    np.testing.assert_array_equal(to_numpy(loaded.compute_loss_and_logits(x, mask)[1]),
                                  to_numpy(model.compute_loss_and_logits(x, mask)[1]))
    backbone = VideoMAEBackbone.from_preset(tmp_path)
    assert backbone.mlp_dim == 64


def test_encoder_only_checkpoint_gets_a_new_decoder(tmp_path, caplog):
    hf = make_checkpoint(tmp_path, kind="model", use_mean_pooling=False)
    pt_x, x = videos_for(hf.config)
    with caplog.at_level(logging.INFO, logger="keras_har"):
        model = VideoMAEPretrainer.from_preset(tmp_path)
    assert "a new decoder" in caplog.text
    with torch.no_grad():
        expected = hf(pixel_values=pt_x).last_hidden_state.numpy()
    np.testing.assert_allclose(to_numpy(model.backbone(x)), expected, atol=ATOL)


@pytest.mark.parametrize(
    "edit, match",
    [
        ("drop", r"decoder\.head\.weight"),
        ("extra", r"decoder\.extra\.weight"),
        ("more_layers", "more decoder layers"),
        ("reshape", r"mask_token.*\(1, 1, 16\)"),
    ],
)
def test_decoder_checkpoint_errors_name_the_tensor(tmp_path, edit, match):
    make_checkpoint(tmp_path, kind="pretraining")
    state = load_file(str(tmp_path / "model.safetensors"))
    config = json.loads((tmp_path / "config.json").read_text())
    if edit == "drop":
        del state["decoder.head.weight"]
    elif edit == "extra":
        state["decoder.extra.weight"] = torch.zeros(2)
    elif edit == "more_layers":
        config["decoder_num_hidden_layers"] = 0
    else:
        state["mask_token"] = torch.zeros(1, 2, 16)
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=match):
        VideoMAEPretrainer.from_preset(tmp_path)

"""VideoMAE converted from transformers checkpoints matches transformers.

The oracle is transformers' own PyTorch VideoMAE, run on the same weights (random
init, every tensor perturbed so that no value is left at its initialiser).
"""

import json
import logging

import keras
import numpy as np
import pytest
import torch
import transformers
from conftest import tiny_videomae_config
from safetensors.torch import load_file, save_file

from keras_har.models import (
    VIDEOMAE_ARCHITECTURES,
    VIDEOMAE_DECODER,
    VideoMAEBackbone,
    VideoMAEClassifier,
)
from keras_har.utils.hub import PresetNotFoundError
from keras_har.utils.preset_utils import CheckpointError

ATOL = 1e-4

HF_CLASSES = {
    "classification": transformers.VideoMAEForVideoClassification,
    "model": transformers.VideoMAEModel,
    "pretraining": transformers.VideoMAEForPreTraining,
}


def perturb(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return model.eval()


def make_checkpoint(path, kind="classification", safetensors=True, num_labels=5, **overrides):
    config = transformers.VideoMAEConfig(
        **tiny_videomae_config(**overrides),
        num_labels=num_labels,
        id2label={i: f"action_{i}" for i in range(num_labels)},
        label2id={f"action_{i}": i for i in range(num_labels)},
        decoder_hidden_size=16,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    torch.manual_seed(0)
    model = perturb(HF_CLASSES[kind](config))
    model.save_pretrained(path)
    if not safetensors:
        state = load_file(str(path / "model.safetensors"))
        (path / "model.safetensors").unlink()
        torch.save(state, path / "pytorch_model.bin")
    return model


def videos_for(config, batch=2, seed=0):
    """pixel_values for transformers (B, T, C, H, W) and ours (B, T, H, W, C)."""
    size = config.image_size
    h, w = (size, size) if isinstance(size, int) else size
    x = np.random.default_rng(seed).normal(size=(batch, config.num_frames, 3, h, w))
    x = x.astype("float32")
    return torch.from_numpy(x), x.transpose(0, 1, 3, 4, 2)


def encoder_of(model):
    return model if isinstance(model, transformers.VideoMAEModel) else model.videomae


def run(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


CASES = {
    "mean_pooling": dict(),
    "first_token": dict(use_mean_pooling=False),
    "tubelet_1": dict(tubelet_size=1, num_frames=2),
    "non_square": dict(image_size=[32, 48]),
    "no_qv_bias": dict(qkv_bias=False),
    "gelu_new_eps": dict(hidden_act="gelu_new", layer_norm_eps=1e-6),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_classifier_matches_transformers(tmp_path, case):
    hf = make_checkpoint(tmp_path, **CASES[case])
    pt_x, x = videos_for(hf.config)
    with torch.no_grad():
        ref = hf(pixel_values=pt_x, output_hidden_states=True)
    model = VideoMAEClassifier.from_preset(tmp_path)
    np.testing.assert_allclose(run(model, x), ref.logits.numpy(), atol=ATOL, rtol=0)
    assert model.labels == [f"action_{i}" for i in range(5)]
    backbone = VideoMAEBackbone.from_preset(tmp_path)
    # transformers' last hidden_states entry is before the final norm (if any).
    expected = encoder_of(hf)(pixel_values=pt_x).last_hidden_state.detach().numpy()
    np.testing.assert_allclose(run(backbone, x), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["model", "pretraining"])
@pytest.mark.parametrize("safetensors", [True, False], ids=["safetensors", "bin"])
def test_headless_checkpoints(tmp_path, kind, safetensors):
    hf = make_checkpoint(tmp_path, kind=kind, safetensors=safetensors, use_mean_pooling=False)
    pt_x, x = videos_for(hf.config)
    with torch.no_grad():
        expected = encoder_of(hf)(pixel_values=pt_x).last_hidden_state.numpy()
    backbone = VideoMAEBackbone.from_preset(tmp_path)
    np.testing.assert_allclose(run(backbone, x), expected, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="no classification head"):
        VideoMAEClassifier.from_preset(tmp_path)
    model = VideoMAEClassifier.from_preset(tmp_path, num_classes=3)
    assert run(model, x).shape == (2, 3)
    np.testing.assert_allclose(run(model.backbone, x), expected, atol=ATOL, rtol=0)


def test_bin_classifier(tmp_path):
    hf = make_checkpoint(tmp_path, safetensors=False)
    pt_x, x = videos_for(hf.config)
    with torch.no_grad():
        expected = hf(pixel_values=pt_x).logits.numpy()
    assert not (tmp_path / "model.safetensors").exists()
    np.testing.assert_allclose(run(VideoMAEClassifier.from_preset(tmp_path), x), expected, atol=ATOL)


def test_legacy_and_new_key_layouts(tmp_path):
    """Old hub files say `qkv_bias` and `q_bias`; newer ones `query.bias`."""
    hf = make_checkpoint(tmp_path)
    pt_x, x = videos_for(hf.config)
    with torch.no_grad():
        expected = hf(pixel_values=pt_x).logits.numpy()
    state = load_file(str(tmp_path / "model.safetensors"))
    renamed = {
        k.replace("attention.attention.q_bias", "attention.attention.query.bias").replace(
            "attention.attention.v_bias", "attention.attention.value.bias"
        ): v
        for k, v in state.items()
    }
    assert renamed.keys() != state.keys()
    save_file(renamed, str(tmp_path / "model.safetensors"))
    config = json.loads((tmp_path / "config.json").read_text())
    config["qkv_bias"] = config.pop("qv_bias", True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    np.testing.assert_allclose(run(VideoMAEClassifier.from_preset(tmp_path), x), expected, atol=ATOL)


def test_head_replacement_keeps_encoder(tmp_path, caplog):
    hf = make_checkpoint(tmp_path)
    pt_x, x = videos_for(hf.config)
    with caplog.at_level(logging.WARNING, logger="keras_har"):
        model = VideoMAEClassifier.from_preset(tmp_path, labels=["a", "b", "c"])
    assert "new 3-way head" in caplog.text
    assert model.num_classes == 3 and model.labels == ["a", "b", "c"]
    assert run(model, x).shape == (2, 3)
    # Encoder and fc_norm weights are the checkpoint's.
    with torch.no_grad():
        hidden = hf.videomae(pixel_values=pt_x).last_hidden_state
        pooled = hf.fc_norm(hidden.mean(1)).numpy()
    features = keras.Model(model.input, model.get_layer("fc_norm").output)
    np.testing.assert_allclose(run(features, x), pooled, atol=ATOL)
    # Same number of classes: the checkpoint head is kept.
    same = VideoMAEClassifier.from_preset(tmp_path, num_classes=5)
    with torch.no_grad():
        np.testing.assert_allclose(run(same, x), hf(pixel_values=pt_x).logits.numpy(), atol=ATOL)


def test_save_to_preset_round_trip(tmp_path):
    make_checkpoint(tmp_path / "hf")
    model = VideoMAEClassifier.from_preset(tmp_path / "hf", dropout=0.1)
    _, x = videos_for(transformers.VideoMAEConfig(**tiny_videomae_config()))
    model.save_to_preset(tmp_path / "ours")
    loaded = VideoMAEClassifier.from_preset(tmp_path / "ours")
    np.testing.assert_array_equal(run(loaded, x), run(model, x))
    assert loaded.labels == model.labels and loaded.dropout == 0.1
    assert loaded.image_mean == model.image_mean
    backbone = VideoMAEBackbone.from_preset(tmp_path / "ours")
    np.testing.assert_array_equal(run(backbone, x), run(model.backbone, x))
    # A new head on our own preset.
    replaced = VideoMAEClassifier.from_preset(tmp_path / "ours", num_classes=2)
    assert run(replaced, x).shape == (2, 2)
    # Whole-model .keras saving.
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(run(restored, x), run(model, x))


def test_preprocessor_config_wins(tmp_path):
    make_checkpoint(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
    )
    model = VideoMAEClassifier.from_preset(tmp_path)
    assert model.image_mean == (0.5, 0.5, 0.5) and model.image_std == (0.5, 0.5, 0.5)
    (tmp_path / "preprocessor_config.json").unlink()
    model = VideoMAEClassifier.from_preset(tmp_path)
    assert model.image_mean == (0.485, 0.456, 0.406)


def test_missing_tensor_is_named(tmp_path):
    make_checkpoint(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["videomae.encoder.layer.1.intermediate.dense.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"layer\.1\.intermediate\.dense\.weight.*\(64, 32\)"):
        VideoMAEClassifier.from_preset(tmp_path)


def test_misshaped_tensor_names_both_shapes(tmp_path):
    make_checkpoint(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] = 48
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"intermediate\.dense\.weight.*\(64, 32\).*\(48, 32\)"):
        VideoMAEClassifier.from_preset(tmp_path)


def test_unused_tensor_is_reported(tmp_path):
    make_checkpoint(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["videomae.extra.weight"] = torch.zeros(3)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"videomae\.extra\.weight"):
        VideoMAEClassifier.from_preset(tmp_path)


def test_more_layers_than_config(tmp_path):
    make_checkpoint(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_hidden_layers"] = 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="more encoder layers"):
        VideoMAEBackbone.from_preset(tmp_path)


def test_wrong_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(CheckpointError, match="model_type is 'vit'"):
        VideoMAEClassifier.from_preset(tmp_path)


def test_hub_handle_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(PresetNotFoundError, match="pass its path"):
        VideoMAEClassifier.from_preset("videomae_base_kinetics", num_classes=51)
    with pytest.raises(PresetNotFoundError, match="MCG-NJU/videomae-base"):
        VideoMAEBackbone.from_preset("hf://MCG-NJU/videomae-base")


def test_unknown_preset_lists_known_names():
    with pytest.raises(FileNotFoundError, match="videomae_base_kinetics"):
        VideoMAEClassifier.from_preset("videomae_nonexistent")


def test_drop_path_is_stochastic_only_in_training():
    backbone = VideoMAEBackbone.from_architecture(
        "tiny", image_size=32, num_frames=4, num_layers=2, drop_path_rate=0.5
    )
    x = np.random.default_rng(0).normal(size=(4, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(run(backbone, x), run(backbone, x))
    a = keras.ops.convert_to_numpy(backbone(x, training=True))
    b = keras.ops.convert_to_numpy(backbone(x, training=True))
    assert not np.allclose(a, b)
    assert backbone.get_layer("transformer_layer_0").drop_path_rate == 0.0
    assert backbone.get_layer("transformer_layer_1").drop_path_rate == 0.5


def test_mixed_precision_runs_close_to_float32(tmp_path):
    hf = make_checkpoint(tmp_path)
    _, x = videos_for(hf.config)
    full = run(VideoMAEClassifier.from_preset(tmp_path), x)
    half = VideoMAEClassifier.from_preset(tmp_path, dtype="mixed_bfloat16")
    assert half.backbone.get_layer("transformer_layer_0").compute_dtype == "bfloat16"
    out = run(half, x).astype("float32")
    assert np.abs(out - full).max() < 0.1 * (np.abs(full).max() + 1)


def test_base_architecture_is_transformers_videomae_default():
    hf = transformers.VideoMAEConfig()
    base = VIDEOMAE_ARCHITECTURES["base"]
    assert (base["hidden_dim"], base["num_layers"], base["num_heads"], base["mlp_dim"]) == (
        hf.hidden_size, hf.num_hidden_layers, hf.num_attention_heads, hf.intermediate_size)
    assert (base["patch_size"], base["tubelet_size"]) == (hf.patch_size, hf.tubelet_size)
    assert VIDEOMAE_DECODER == dict(
        decoder_hidden_dim=hf.decoder_hidden_size, decoder_num_layers=hf.decoder_num_hidden_layers,
        decoder_num_heads=hf.decoder_num_attention_heads, decoder_mlp_dim=hf.decoder_intermediate_size)


def test_from_architecture():
    backbone = VideoMAEBackbone.from_architecture("tiny", image_size=32, num_frames=4, drop_path_rate=0.1)
    tiny = VIDEOMAE_ARCHITECTURES["tiny"]
    assert (backbone.hidden_dim, backbone.num_layers, backbone.num_heads, backbone.mlp_dim) == (
        tiny["hidden_dim"], tiny["num_layers"], tiny["num_heads"], tiny["mlp_dim"])
    assert backbone.drop_path_rate == 0.1 and backbone.num_tokens == 2 * 4 * 4
    model = VideoMAEClassifier.from_architecture(
        "tiny", labels=["a", "b", "c"], pooling="first", dropout=0.2, image_size=32, num_frames=4,
        num_layers=1, use_mean_pooling=False,
    )
    assert model.num_classes == 3 and model.pooling == "first" and model.dropout == 0.2
    assert model.backbone.num_layers == 1 and model.backbone.final_norm is not None
    assert model.predict(np.zeros((1, 4, 32, 32, 3), "uint8"), verbose=0).shape == (1, 3)
    with pytest.raises(ValueError, match="Unknown VideoMAE architecture 'gigantic'; known: tiny, small, base, large, huge"):
        VideoMAEBackbone.from_architecture("gigantic")
    with pytest.raises(ValueError, match="VideoMAEClassifier needs num_classes or labels"):
        VideoMAEClassifier.from_architecture("tiny", image_size=32, num_frames=4)


def test_backbone_configs_saved_under_the_old_argument_names_still_load():
    backbone = VideoMAEBackbone.from_architecture(
        "tiny", image_size=32, num_frames=4, num_layers=1, activation="gelu_new", layer_norm_epsilon=1e-6)
    config = backbone.get_config()
    old = {"hidden_dim": "hidden_size", "mlp_dim": "intermediate_size", "activation": "hidden_act",
           "layer_norm_epsilon": "layer_norm_eps", "dropout_rate": "hidden_dropout"}
    saved = {old.get(k, k): v for k, v in config.items()}
    assert "hidden_size" in saved and "hidden_dim" not in saved
    reloaded = VideoMAEBackbone.from_config(saved)
    assert reloaded.get_config() == config
    reloaded.set_weights(backbone.get_weights())
    x = np.random.default_rng(0).normal(size=(1, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(run(reloaded, x), run(backbone, x))
    with pytest.raises(ValueError, match="both 'hidden_size' and 'hidden_dim'"):
        VideoMAEBackbone.from_config({**config, "hidden_size": 64})


def test_compile_defaults_are_cross_entropy_on_one_hot_targets_and_top_k():
    keras.utils.set_random_seed(0)
    model = VideoMAEClassifier.from_architecture("tiny", num_classes=7, image_size=32, num_frames=4, num_layers=1)
    # A head with some spread, so that the top-k sets are not near ties.
    model.predictions.kernel.assign(np.random.default_rng(1).normal(size=model.predictions.kernel.shape))
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 7, size=16)
    result = model.evaluate(x, np.eye(7, dtype="float32")[labels], batch_size=16, return_dict=True, verbose=0)
    logits = model.predict(x, batch_size=16, verbose=0).astype("float64")
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert result["loss"] == pytest.approx(-log_probs[np.arange(16), labels].mean(), rel=1e-4)
    assert result["top1"] == pytest.approx((logits.argmax(1) == labels).mean())
    assert result["top5"] == pytest.approx((top5 == labels[:, None]).any(1).mean())


def test_compile_defaults_train_under_mixed_bfloat16():
    """The default metrics take a mixed_bfloat16 model's bfloat16 logits on
    every backend (TensorFlow's `in_top_k` takes float32 only), and top-5 is
    the numpy count on them."""
    keras.utils.set_random_seed(0)
    model = VideoMAEClassifier.from_architecture("tiny", num_classes=7, image_size=32, num_frames=4, num_layers=1,
                                                 dtype="mixed_bfloat16")
    model.compile()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 7, size=8)
    history = model.fit(x, np.eye(7, dtype="float32")[labels], batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "top5" in history.history
    result = model.evaluate(x, np.eye(7, dtype="float32")[labels], batch_size=8, return_dict=True, verbose=0)
    logits = np.asarray(model.predict(x, batch_size=8, verbose=0), dtype="float64")
    top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    assert result["top5"] == pytest.approx((top5 == labels[:, None]).any(1).mean())


"""MeanPooledViTClassifier: timm parity, checkpoint formats, head replacement,
errors, preset round trips, and its per-group optimizer."""

import keras
import numpy as np
import pytest

from conftest import tiny_vit_config
from keras_har.models import MEAN_POOLED_VIT_ARCHITECTURES, MeanPooledViTClassifier
from keras_har.utils.preset_utils import CheckpointError
from keras_har.training.optimizers import (
    GroupedAdamW,
    head_multipliers,
    layer_decay_multipliers,
    model_no_decay_patterns,
    no_weight_decay_names,
)

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from timm.models._hub import save_for_hf  # noqa: E402


def perturbed(model, seed=0, scale=0.05):
    """Every tensor moved away from its init (norms and biases included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


def timm_clip_logits(model, videos):
    """Mean over frames of timm's per-frame logits."""
    b, t, h, w, c = videos.shape
    frames = torch.from_numpy(videos.reshape(b * t, h, w, c)).permute(0, 3, 1, 2)
    with torch.no_grad():
        logits = model(frames).numpy()
    return logits.reshape(b, t, -1).mean(axis=1)


def timm_frame_features(model, videos):
    b, t, h, w, c = videos.shape
    frames = torch.from_numpy(videos.reshape(b * t, h, w, c)).permute(0, 3, 1, 2)
    with torch.no_grad():
        return model.forward_features(frames)[:, 0].numpy()


def random_videos(batch=2, frames=3, size=32, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, frames, size, size, 3)).astype("float32")


def logits(model, videos):
    return keras.ops.convert_to_numpy(model(videos, training=False))


@pytest.fixture(scope="module")
def tiny_timm(tmp_path_factory):
    """A tiny timm ViT saved as timm publishes to the hub; returns (model, dir)."""
    model = perturbed(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7,
                                        **tiny_vit_config()))
    path = tmp_path_factory.mktemp("timm_tiny")
    save_for_hf(model, path, model_args={"num_heads": 4}, safe_serialization=True)
    return model, path


def test_vit_small_hub_directory_matches_timm(tmp_path):
    timm_model = perturbed(timm.create_model("vit_small_patch16_224", pretrained=False, img_size=32))
    save_for_hf(timm_model, tmp_path, safe_serialization=True)
    model = MeanPooledViTClassifier.from_preset(str(tmp_path))

    backbone = model.backbone
    assert (backbone.hidden_dim, backbone.num_layers, backbone.num_heads, backbone.mlp_dim) == (384, 12, 6, 1536)
    assert tuple(backbone.patch_size) == (16, 16) and model.image_size == (32, 32)
    assert model.num_classes == 1000
    assert model.image_mean == (0.5, 0.5, 0.5) and model.image_std == (0.5, 0.5, 0.5)
    videos = random_videos()
    np.testing.assert_allclose(logits(model, videos), timm_clip_logits(timm_model, videos), atol=1e-4)


def test_tiny_hub_directory_any_frame_count(tiny_timm):
    timm_model, path = tiny_timm
    model = MeanPooledViTClassifier.from_preset(str(path))
    assert model.num_classes == 7 and model.backbone.num_heads == 4
    for frames in (1, 4):
        videos = random_videos(frames=frames, seed=frames)
        np.testing.assert_allclose(logits(model, videos), timm_clip_logits(timm_model, videos), atol=1e-4)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_bare_state_dict_file(tiny_timm, tmp_path, suffix):
    timm_model, _ = tiny_timm
    state = {k: v.contiguous() for k, v in timm_model.state_dict().items()}
    file = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(file))
    else:
        torch.save(state, str(file))
    with pytest.raises(CheckpointError, match="num_heads"):  # 32 wide: not in the weights
        MeanPooledViTClassifier.from_preset(str(file))
    model = MeanPooledViTClassifier.from_preset(str(file), num_heads=4)
    videos = random_videos()
    np.testing.assert_allclose(logits(model, videos), timm_clip_logits(timm_model, videos), atol=1e-4)


def test_new_head_keeps_backbone(tiny_timm):
    timm_model, path = tiny_timm
    model = MeanPooledViTClassifier.from_preset(str(path), labels=list("abcde"))
    assert model.num_classes == 5 and model.class_names == list("abcde")
    assert tuple(model.predictions.kernel.shape) == (32, 5)
    videos = random_videos(frames=2)
    tokens = model.backbone(videos.reshape(-1, 32, 32, 3))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(tokens[:, 0]), timm_frame_features(timm_model, videos), atol=1e-4
    )


def test_image_size_override_resamples_like_timm(tiny_timm):
    timm_model, path = tiny_timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    big = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7,
                            **tiny_vit_config(img_size=48)).eval()
    big.load_state_dict(checkpoint_filter_fn(timm_model.state_dict(), big))
    model = MeanPooledViTClassifier.from_preset(str(path), image_size=48)
    assert model.image_size == (48, 48)
    videos = random_videos(frames=2, size=48)
    np.testing.assert_allclose(logits(model, videos), timm_clip_logits(big, videos), atol=1e-4)


def _write(state, tmp_path):
    from safetensors.numpy import save_file

    file = tmp_path / "bad.safetensors"
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(file))
    return str(file)


def test_checkpoint_errors_name_the_tensor(tiny_timm, tmp_path):
    timm_model, _ = tiny_timm
    state = {k: v.numpy() for k, v in timm_model.state_dict().items()}

    bad = dict(state, **{"blocks.1.mlp.fc2.weight": np.zeros((32, 63), "float32")})
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.fc2\.weight.*\(32, 63\).*\(32, 64\)"):
        MeanPooledViTClassifier.from_preset(_write(bad, tmp_path), num_heads=4)

    missing = {k: v for k, v in state.items() if k != "blocks.1.norm2.bias"}
    with pytest.raises(CheckpointError, match=r"missing tensor 'blocks\.1\.norm2\.bias'"):
        MeanPooledViTClassifier.from_preset(_write(missing, tmp_path), num_heads=4)

    extra = dict(state, **{"blocks.0.ls1.gamma": np.ones((32,), "float32")})  # layer scale
    with pytest.raises(CheckpointError, match=r"blocks\.0\.ls1\.gamma"):
        MeanPooledViTClassifier.from_preset(_write(extra, tmp_path), num_heads=4)

    no_cls = {k: v for k, v in state.items() if k != "cls_token"}
    with pytest.raises(CheckpointError, match="cls_token"):
        MeanPooledViTClassifier.from_preset(_write(no_cls, tmp_path), num_heads=4)


def test_save_to_preset_round_trip(tiny_timm, tmp_path):
    _, path = tiny_timm
    model = MeanPooledViTClassifier.from_preset(str(path), labels=["run", "jump", "sit"], dropout=0.1)
    model.save_to_preset(str(tmp_path / "preset"))
    restored = MeanPooledViTClassifier.from_preset(str(tmp_path / "preset"), image_size=32)
    with pytest.raises(ValueError, match="image_size=48"):
        MeanPooledViTClassifier.from_preset(str(tmp_path / "preset"), image_size=48)
    assert restored.class_names == ["run", "jump", "sit"] and restored.dropout == 0.1
    videos = random_videos()
    np.testing.assert_array_equal(logits(restored, videos), logits(model, videos))

    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded, MeanPooledViTClassifier)
    np.testing.assert_array_equal(logits(reloaded, videos), logits(model, videos))


def test_from_scratch_defaults_to_vit_small():
    config = MeanPooledViTClassifier.from_scratch(image_size=32, num_classes=3).backbone.get_config()
    assert (config["hidden_dim"], config["num_layers"], config["num_heads"], config["mlp_dim"]) == (384, 12, 6, 1536)
    assert config["layer_norm_epsilon"] == 1e-6


def test_small_architecture_is_timm_vit_small():
    vit = timm.create_model("vit_small_patch16_224", pretrained=False)
    small = MEAN_POOLED_VIT_ARCHITECTURES["small"]
    block = vit.blocks[0]
    assert (small["hidden_dim"], small["num_layers"], small["num_heads"], small["mlp_dim"]) == (
        vit.embed_dim, len(vit.blocks), block.attn.num_heads, block.mlp.fc1.out_features)
    assert (small["patch_size"], small["patch_size"]) == tuple(vit.patch_embed.patch_size)
    assert small["layer_norm_epsilon"] == block.norm1.eps == vit.norm.eps


def test_from_architecture():
    model = MeanPooledViTClassifier.from_architecture("tiny", image_size=32, labels=["a", "b"], dropout=0.1)
    tiny = MEAN_POOLED_VIT_ARCHITECTURES["tiny"]
    b = model.backbone
    assert (b.hidden_dim, b.num_layers, b.num_heads, b.mlp_dim) == (
        tiny["hidden_dim"], tiny["num_layers"], tiny["num_heads"], tiny["mlp_dim"])
    assert model.image_size == (32, 32) and model.class_names == ["a", "b"] and model.dropout == 0.1
    assert model.image_mean == (0.5, 0.5, 0.5) and model.image_std == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="Unknown mean-pooled ViT architecture 'base'; known: tiny, small"):
        MeanPooledViTClassifier.from_architecture("base", num_classes=3)


def tiny_classifier(num_classes=3):
    return MeanPooledViTClassifier.from_architecture("tiny", image_size=32, num_classes=num_classes,
                                                     num_layers=2, hidden_dim=32, mlp_dim=64)


def test_head_and_backbone_learning_rates_differ():
    model = tiny_classifier()
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    optimizer = GroupedAdamW(
        learning_rate=1.0, weight_decay=0.0,
        lr_multipliers=head_multipliers(model, head_lr=5e-3, backbone_lr=1e-3),
    )
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    x = random_videos(batch=4, frames=2)
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)

    after = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}

    def step(path):  # Adam's first step moves each element by ~lr
        delta = np.abs(after[path] - before[path])
        return np.median(delta[delta > 0])

    head = step("predictions/kernel")
    backbone = step("vit_encoder/transformer_block_1/mlp/dense_1/kernel")
    np.testing.assert_allclose(head, 5e-3, rtol=0.05)
    np.testing.assert_allclose(backbone, 1e-3, rtol=0.05)


def test_layer_decay_multipliers():
    model = tiny_classifier()  # 2 blocks
    m = layer_decay_multipliers(model, 0.75)
    assert m["vit_patching_and_embedding/patch_embedding/kernel"] == pytest.approx(0.75**3)
    assert m["vit_patching_and_embedding/class_token"] == pytest.approx(0.75**3)
    assert m["vit_patching_and_embedding/position_embedding/embeddings"] == pytest.approx(0.75**3)
    assert m["vit_encoder/transformer_block_1/mha/query/kernel"] == pytest.approx(0.75**2)
    assert m["vit_encoder/transformer_block_2/ln_2/gamma"] == pytest.approx(0.75)
    assert m["vit_encoder/ln/gamma"] == 1.0 and m["predictions/kernel"] == 1.0
    # VideoMAEBackbone naming: 0-based `transformer_layer_{i}`, `patch_embedding`.
    from keras_har.models import VideoMAEBackbone

    videomae = VideoMAEBackbone.from_architecture("tiny", image_size=16, num_frames=2, num_layers=12,
                                                  hidden_dim=8, num_heads=2, mlp_dim=8)
    layer_id = videomae.layer_id
    assert layer_id("patch_embedding/kernel") == 0
    assert layer_id("transformer_layer_0/fc1/kernel") == 1
    assert layer_id("transformer_layer_11/attention/q_bias") == 12
    assert layer_id("fc_norm/gamma") == 13 and layer_id("predictions/bias") == 13


def test_weight_decay_exclusions():
    model = tiny_classifier()
    excluded = set(no_weight_decay_names(model))
    assert "vit_encoder/transformer_block_1/mha/query/bias" in excluded  # 2-D bias
    assert {"vit_patching_and_embedding/class_token",
            "vit_patching_and_embedding/position_embedding/embeddings",
            "vit_encoder/ln/gamma", "predictions/bias"} <= excluded
    assert "predictions/kernel" not in excluded

    variables = model.trainable_variables
    before = {v.path: keras.ops.convert_to_numpy(v) for v in variables}
    optimizer = GroupedAdamW(learning_rate=0.1, weight_decay=0.5,
                             lr_multipliers={"predictions/kernel": 2.0},
                             no_decay_patterns=model_no_decay_patterns(model))
    optimizer.apply([keras.ops.zeros(v.shape) for v in variables], variables)  # zero gradients
    for v in variables:
        after = keras.ops.convert_to_numpy(v)
        if v.path in excluded:
            np.testing.assert_array_equal(after, before[v.path], err_msg=v.path)
        else:
            rate = 0.2 if v.path == "predictions/kernel" else 0.1
            np.testing.assert_allclose(after, before[v.path] * (1 - 0.5 * rate), rtol=1e-6, err_msg=v.path)


def test_transformers_vit_directory_goes_through_keras_hub(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=4, layer_norm_eps=1e-6,
    )
    torch.manual_seed(0)
    hf_model = perturbed(transformers.ViTForImageClassification(config))
    hf_model.save_pretrained(tmp_path)
    model = MeanPooledViTClassifier.from_preset(str(tmp_path))
    assert model.num_classes == 4 and model.class_names == ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]
    videos = random_videos()
    frames = torch.from_numpy(videos.reshape(6, 32, 32, 3)).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = hf_model(pixel_values=frames).logits.numpy().reshape(2, 3, -1).mean(axis=1)
    np.testing.assert_allclose(logits(model, videos), expected, atol=1e-4)

"""keras-hub's structure: one preset-format dispatcher, converters that import
the models (never the reverse), registered presets, and a preprocessor that
makes every classifier take raw uint8 frames."""

import ast
import json
import pathlib

import keras
import numpy as np
import pytest
from conftest import moving_square_frames, write_video

from keras_har import data, load_classifier
from keras_har.models import (
    MeanPooledViTClassifier,
    VideoClassifier,
    VideoMAEBackbone,
    VideoMAEClassifier,
)
from keras_har.utils import preset_utils

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_har"


def _imports(path, top_level_only, modules):
    """keras_har modules a file imports (module level, or anywhere):
    `from pkg import submodule` counts as the submodule, not the package."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_har"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("keras_har"))
    return out


def _module_graph(top_level_only):
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return {name: {m for m in _imports(path, top_level_only, modules) if m in modules and m != name}
            for name, path in modules.items()}


def test_no_import_cycle_and_models_never_import_converters():
    graph = _module_graph(top_level_only=False)  # every import, in functions too
    for name, targets in graph.items():
        if name.startswith("keras_har.models"):
            assert not {t for t in targets if t.startswith("keras_har.converters")}, name
    # The converters import the models; the dispatcher finds their loaders by
    # format name among the package's entry points, never by importing them.
    assert not {n for n, t in graph.items() if "keras_har.converters.preset_loaders" in t}
    assert "keras_har.converters.videomae" in graph["keras_har.converters.preset_loaders"]
    assert "keras_har.models.videomae_backbone" in graph["keras_har.converters.videomae"]
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


def test_foreign_formats_are_the_entry_points_loaders():
    from keras_har.converters import preset_loaders

    assert preset_utils.foreign_loader_class("transformers") is preset_loaders.TransformersPresetLoader
    assert preset_utils.foreign_loader_class("timm") is preset_loaders.TimmPresetLoader
    with pytest.raises(preset_utils.PresetFormatError, match="ckpt: a onnx checkpoint, and no loader"):
        preset_utils.foreign_loader_class("onnx", "ckpt")


def test_one_dispatcher_decides_the_format(tmp_path):
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "config.json").write_text(json.dumps({"registered_name": "x", "config": {}}))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "videomae"}))
    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "config.json").write_text(json.dumps({"architecture": "vit_small_patch16_224"}))
    (tmp_path / "weights.pth").write_bytes(b"")
    assert preset_utils.preset_format(tmp_path / "ours")[0] == "keras"
    assert preset_utils.preset_format(tmp_path / "hf")[0] == "transformers"
    assert preset_utils.preset_format(tmp_path / "timm")[0] == "timm"
    assert preset_utils.preset_format(tmp_path / "weights.pth")[0] == "timm"
    # A directory without config.json: every entry point says the same thing.
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "model.safetensors").write_bytes(b"")
    for load in (VideoMAEClassifier.from_preset, MeanPooledViTClassifier.from_preset,
                 VideoClassifier.from_preset, load_classifier, VideoMAEBackbone.from_preset):
        with pytest.raises(preset_utils.PresetFormatError, match="bare: not a preset directory"):
            load(tmp_path / "bare")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(preset_utils.PresetFormatError, match="broken/config.json: not readable JSON"):
        load_classifier(tmp_path / "broken")


def test_presets_are_registered():
    names = set(VideoMAEClassifier.presets)
    assert {"videomae_base_kinetics", "videomae_base_pretrained_kinetics", "videomae_small_ssv2"} <= names
    assert len([n for n in names if n.startswith("videomae_")]) == 13
    assert set(VideoMAEBackbone.presets) >= names
    assert "vit_small_augreg_in21k_ft_in1k" in MeanPooledViTClassifier.presets
    assert preset_utils.known_preset_handle("videomae_base_kinetics") == \
        "hf://MCG-NJU/videomae-base-finetuned-kinetics"


def _classifiers():
    backbone = VideoMAEBackbone(image_size=32, num_frames=4, patch_size=8, tubelet_size=2,
                                hidden_dim=32, num_layers=1, num_heads=4, mlp_dim=64)
    yield VideoMAEClassifier(backbone, num_classes=3, image_mean=(0.45, 0.4, 0.35),
                             image_std=(0.22, 0.25, 0.3))
    yield MeanPooledViTClassifier.from_scratch(image_size=32, num_classes=3, patch_size=8, num_layers=1,
                                               num_heads=4, hidden_dim=32, mlp_dim=64)


@pytest.mark.parametrize("index", [0, 1], ids=["videomae", "mean_pooled_vit"])
def test_predict_on_raw_frames_equals_loader_normalised_frames(tmp_path, index):
    """`predict(uint8 frames)` normalises through the attached preprocessor;
    the loader normalises the same frames with its lookup table built from the
    preprocessor's constants. Both give the same logits."""
    model = list(_classifiers())[index]
    path = tmp_path / "clip.avi"
    write_video(path, moving_square_frames(num_frames=12, height=40, width=56))
    clip = dict(num_frames=4, sampling_rate=2, image_size=32)
    raw = data.eval_views(path, views="single", **clip)[None]  # uint8 (1, T, S, S, 3)
    assert raw.dtype == np.uint8
    loader_x = next(iter(data.make_loader(data.VideoDataset([(str(path), 0)], ["a", "b", "c"]), training=False,
                                          batch_size=1, mean=model.image_mean, std=model.image_std,
                                          workers=0, **clip)))[0]
    np.testing.assert_allclose(loader_x, data.load_video_views(path, mean=model.image_mean,
                                                               std=model.image_std, **clip)[None])
    from_raw = keras.ops.convert_to_numpy(model.predict(raw, verbose=0))
    from_loader = keras.ops.convert_to_numpy(model.predict(loader_x, verbose=0))
    np.testing.assert_allclose(from_raw, from_loader, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.predict_on_batch(raw)), from_loader,
                               atol=1e-5, rtol=1e-5)
    # Float inputs are taken as normalised: the preprocessor leaves them alone.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.preprocessor(loader_x)), loader_x)
    # Frames of another size are resized to the model's.
    big = np.repeat(np.repeat(raw, 2, axis=2), 2, axis=3)
    assert model.predict(big, verbose=0).shape == (1, 3)


def test_preprocessor_is_saved_with_the_preset(tmp_path):
    model = next(_classifiers())
    model.save_to_preset(tmp_path / "preset")
    assert (tmp_path / "preset" / "preprocessor.json").exists()
    loaded = load_classifier(tmp_path / "preset")
    assert isinstance(loaded, VideoMAEClassifier)
    assert loaded.image_mean == (0.45, 0.4, 0.35) and loaded.image_std == (0.22, 0.25, 0.3)
    x = np.random.default_rng(0).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.predict_on_batch(x)),
                               keras.ops.convert_to_numpy(model.predict_on_batch(x)), atol=1e-6)
    # A preset saved before the preprocessor existed (normalisation in the task config).
    task = json.loads((tmp_path / "preset" / "task.json").read_text())
    task["config"].pop("preprocessor")
    task["config"].update(image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    (tmp_path / "preset" / "task.json").write_text(json.dumps(task))
    old = load_classifier(tmp_path / "preset")
    assert old.image_mean == (0.5, 0.5, 0.5) and old.image_std == (0.25, 0.25, 0.25)

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
    """(keras_har modules, other top-level packages) a file imports (module
    level, or anywhere): `from pkg import submodule` counts as the submodule,
    not the package."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    internal, external = set(), set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "keras_har":
                external.add(node.module.split(".")[0])
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                internal.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                (internal if alias.name.startswith("keras_har") else external).add(
                    alias.name if alias.name.startswith("keras_har") else alias.name.split(".")[0]
                )
    return internal, external


def _package_modules(package=PACKAGE):
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _module_graph(top_level_only, package=PACKAGE):
    """`{module: (keras_har modules it imports, external packages it imports)}`."""
    modules = _package_modules(package)
    graph = {}
    for name, path in modules.items():
        internal, external = _imports(path, top_level_only, modules)
        graph[name] = ({m for m in internal if m in modules and m != name}, external)
    return graph


# Which of keras_har's packages (and top-level modules) each may import, so
# that the arrows only point down: utils at the bottom, then layers, the
# data pipeline, the models, their converters, and the application layer.
# models -> data: the keras-free mask geometry (`data.masking`) and the
# normalisation arithmetic (`data.normalization`) the loaders share with the
# models. Every package of keras_har must have a row.
_APPLICATION = {"utils", "layers", "data", "models", "converters", "training", "evaluation", "cli",
                "recipes", "export", "long_video", "plots", "runtimes", "flags", "errors"}
ALLOWED_IMPORTS = {
    "utils": set(),
    "errors": set(),  # the one error-to-exit path: nothing of keras-har
    "flags": {"data", "utils"},  # the command-line flags: Keras-free, read by every command
    "layers": {"utils"},
    "data": {"utils"},
    "models": {"layers", "utils", "data"},
    "converters": {"models", "layers", "utils", "data"},
    **{name: _APPLICATION for name in ("training", "evaluation", "cli", "recipes", "export", "long_video",
                                       "plots", "runtimes")},
}
# Packages that never import Keras (the loader workers import them; tf.data,
# imported inside the functions that build a tf.data pipeline, is allowed).
FRAMEWORK_FREE = {"data": ("keras", "keras_hub")}


def _group(module):
    """`keras_har.models.videomae.x` -> "models"; `keras_har.cli` -> "cli"; the root -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def import_direction_violations(package=PACKAGE):
    """Every import (module level or in a function) that runs against
    `ALLOWED_IMPORTS` / `FRAMEWORK_FREE`, and every package with no rule."""
    graph = _module_graph(top_level_only=False, package=package)
    problems = []
    for name, (targets, external) in sorted(graph.items()):
        group = _group(name)
        if group is None:
            continue
        if group not in ALLOWED_IMPORTS:
            problems.append(f"{name}: package {group!r} has no row in ALLOWED_IMPORTS")
            continue
        for target in sorted(targets):
            target_group = _group(target)
            if target_group not in (group, None) and target_group not in ALLOWED_IMPORTS[group]:
                problems.append(f"{name} imports {target} ({group} -> {target_group})")
        for framework in FRAMEWORK_FREE.get(group, ()):
            if framework in external:
                problems.append(f"{name} imports {framework}")
    return problems


def test_imports_only_point_down():
    assert import_direction_violations() == []
    # keras-hub's private API is reached through one module.
    graph = _module_graph(top_level_only=False)
    private = sorted(name for name, path in _package_modules().items() if "keras_hub.src" in path.read_text())
    assert private == ["keras_har.utils.keras_hub_compat"]
    # The converters import the models; the dispatcher finds their loaders by
    # format name among the package's entry points, never by importing them.
    assert not {n for n, (t, _) in graph.items() if "keras_har.converters.preset_loaders" in t}
    assert "keras_har.converters.transformers.convert_videomae" in graph["keras_har.converters.preset_loaders"][0]


def test_import_rules_catch_an_arrow_back_up_and_an_unlisted_package(tmp_path):
    root = tmp_path / "keras_har"
    for sub in ("utils", "converters", "data", "newpkg"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "converters" / "checkpoint.py").write_text("class CheckpointError(ValueError): pass\n")
    (root / "utils" / "preset_utils.py").write_text(
        "def f():\n    from keras_har.converters.checkpoint import CheckpointError\n")
    (root / "data" / "pipeline.py").write_text("import keras.ops\n")
    (root / "newpkg" / "thing.py").write_text("")
    assert import_direction_violations(root) == [
        "keras_har.data.pipeline imports keras",
        "keras_har.newpkg: package 'newpkg' has no row in ALLOWED_IMPORTS",
        "keras_har.newpkg.thing: package 'newpkg' has no row in ALLOWED_IMPORTS",
        "keras_har.utils.preset_utils imports keras_har.converters.checkpoint (utils -> converters)",
    ]


def test_no_import_cycle():
    graph = {name: targets for name, (targets, _) in _module_graph(top_level_only=False).items()}
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
    yield VideoMAEClassifier.from_architecture("tiny", num_classes=3, image_size=32, num_frames=4, num_layers=1,
                                               image_mean=(0.45, 0.4, 0.35), image_std=(0.22, 0.25, 0.3))
    yield MeanPooledViTClassifier.from_architecture("tiny", image_size=32, num_classes=3, num_layers=1)


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

"""recipes/videomae_pretrain.py end to end on tiny generated videos: the run
directory, an exact resume, and fine-tuning from the saved model."""

import json

import keras
import numpy as np
import pytest
from test_recipes import Killed, dataset_flags, history, load_recipe

from keras_har.models import VideoMAEClassifier, VideoMAEPretrainer
from keras_har.training import callbacks as callbacks_module
from keras_har.training import experiment


def pretrain_flags(tiny_synthetic, out):
    return dataset_flags(tiny_synthetic) + [
        "--preset", "tiny", "--epochs", "2", "--warmup-epochs", "1", "--base-lr", "0.1",
        "--mask-ratio", "0.75", "--holdout", "4", "--reconstructions", "2", "--output-dir", str(out),
        "--decoder-depth", "1", "--decoder-width", "32", "--decoder-heads", "2", "--decoder-mlp", "64",
    ]


@pytest.fixture(scope="module")
def pretrain_run(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    metrics = load_recipe("videomae_pretrain").main(pretrain_flags(tiny_synthetic, out))
    return out, metrics


def test_help_shows_the_official_defaults(capsys):
    with pytest.raises(SystemExit):
        load_recipe("videomae_pretrain").build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, value in (("--beta-2", "0.95"), ("--weight-decay", "0.05"), ("--base-lr", "0.00015"),
                        ("--warmup-epochs", "40"), ("--epochs", "800"), ("--mask-ratio", "0.9"),
                        ("--decoder-depth", "4"), ("--num-frames", None)):
        assert flag in text
        if value:
            assert f"official: {value}" in text.split(flag, 1)[1].split("--", 1)[0] or value in text


def test_sampling_rate_defaults_to_4_on_hmdb51_and_ucf101():
    recipe = load_recipe("videomae_pretrain")
    for dataset, rate in (("hmdb51", 4), ("ucf101", 4), ("folder", 2), ("synthetic", 2)):
        args = recipe.resolve_defaults(recipe.build_parser().parse_args(["--dataset", dataset]))
        assert args.sampling_rate == rate


def test_run_directory(pretrain_run):
    out, metrics = pretrain_run
    config = json.loads((out / "config.json").read_text())
    assert (config["beta_1"], config["beta_2"], config["weight_decay"]) == (0.9, 0.95, 0.05)
    assert config["sampling_rate"] == 4 and config["backend"] == keras.backend.backend()
    rows = history(out / "history_phase1.csv")
    assert len(rows) == 2 and {"loss", "val_loss"} <= set(rows[0])
    assert metrics["val_loss"] == pytest.approx(float(rows[-1]["val_loss"]))
    assert (out / "checkpoints" / "last.weights.h5").exists()
    for png in ("curves.png", "reconstructions.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = VideoMAEPretrainer.from_preset(out / "model")
    assert (model.mask_ratio, model.masking, model.norm_pix_loss) == (0.75, "tube", True)


def test_fine_tune_from_the_pretrained_model(pretrain_run, tiny_synthetic, tmp_path):
    out, _ = pretrain_run
    pretrainer = VideoMAEPretrainer.from_preset(out / "model")
    classifier = VideoMAEClassifier.from_preset(out / "model", num_classes=6)
    for a, b in zip(pretrainer.backbone.weights, classifier.backbone.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    # The fine-tuning recipe builds its model from `--preset <run>/model`.
    finetune = load_recipe("videomae_two_phase")
    args = finetune.build_parser().parse_args(dataset_flags(tiny_synthetic) + ["--preset", str(out / "model")])
    finetune.resolve_defaults(args)
    model = finetune.build_model(args, [f"class_{i}" for i in range(6)])
    assert model.num_classes == 6
    for a, b in zip(pretrainer.backbone.weights, model.backbone.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    x = np.random.default_rng(0).normal(size=(2, 4, 32, 32, 3)).astype("float32")
    assert np.isfinite(keras.ops.convert_to_numpy(model(x))).all()


def test_resume_after_a_kill_matches_the_uninterrupted_run(pretrain_run, tiny_synthetic, tmp_path, monkeypatch):
    reference, _ = pretrain_run
    recipe = load_recipe("videomae_pretrain")
    original = callbacks_module.RunCheckpoint.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        raise Killed

    monkeypatch.setattr(callbacks_module.RunCheckpoint, "on_epoch_end", on_epoch_end)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        recipe.main(pretrain_flags(tiny_synthetic, out))
    assert json.loads((out / "state.json").read_text())["phase1_epochs_done"] == 1
    monkeypatch.setattr(callbacks_module.RunCheckpoint, "on_epoch_end", original)
    recipe.main(["--resume", str(out), "--verbose", "0"])
    a, b = history(reference / "history_phase1.csv"), history(out / "history_phase1.csv")
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([float(r[key]) for r in b], [float(r[key]) for r in a], rtol=1e-4, atol=1e-5)


def test_continue_from_a_transformers_pretraining_checkpoint(tiny_synthetic, tmp_path):
    from test_videomae import make_checkpoint

    hf = make_checkpoint(tmp_path / "hf", kind="pretraining")  # 4 frames of 32x32
    recipe = load_recipe("videomae_pretrain")
    flags = pretrain_flags(tiny_synthetic, tmp_path / "run")
    flags[flags.index("--preset") + 1] = str(tmp_path / "hf")
    args = recipe.resolve_defaults(recipe.build_parser().parse_args(flags))
    model = recipe.build_model(args)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.decoder_head.bias),
                               hf.decoder.head.bias.detach().numpy(), atol=1e-6)
    assert model.mask_ratio == 0.75
    args.num_frames = 8
    with pytest.raises(ValueError, match="--num-frames 4"):
        recipe.build_model(args)

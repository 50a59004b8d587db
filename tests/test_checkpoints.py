"""Atomic checkpoints, optimizer-state round trip and the NaN guard."""

import json

import keras
import numpy as np
import pytest

from keras_har.training import checkpoints
from keras_har.training.callbacks import NaNGuard, NonFiniteLossError, RunCheckpoint


def small_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="mse")
    return model


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "state.json"
    checkpoints.write_json(target, {"epoch": 1})

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write('{"epoch": 2')  # half written
        raise KeyboardInterrupt  # killed while saving

    with pytest.raises(KeyboardInterrupt):
        checkpoints.atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_optimizer_state_round_trip(tmp_path):
    x, y = data()
    model = small_model()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    checkpoints.save_weights(model, tmp_path / "last.weights.h5")  # the optimizer's state too

    restored = small_model()
    checkpoints.load_checkpoint(restored, tmp_path / "last.weights.h5")
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 8
    # One more identical step from both gives identical weights.
    model.fit(x[:4], y[:4], epochs=1, batch_size=4, verbose=0, shuffle=False)
    restored.fit(x[:4], y[:4], epochs=1, batch_size=4, verbose=0, shuffle=False)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-6)
    # Weights saved before any training hold no usable optimizer state: named, not skipped.
    untrained = small_model()
    untrained.save_weights(tmp_path / "plain.weights.h5")
    with pytest.raises(ValueError, match="plain.weights.h5: holds .* optimizer variables where"):
        checkpoints.load_checkpoint(small_model(), tmp_path / "plain.weights.h5")


def test_run_checkpoint_tracks_best_and_last(tmp_path):
    x, y = data()
    model = small_model()
    cb = RunCheckpoint(tmp_path, phase=1, monitor="val_loss_neg")

    class Neg(keras.callbacks.Callback):
        values = iter([0.1, 0.5, 0.3])

        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss_neg"] = next(self.values)

    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[Neg(), cb])
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["phase1_epochs_done"] == 3 and state["phase1_best"] == 0.5
    assert (tmp_path / "checkpoints" / "best_phase1.weights.h5").exists()
    restored = small_model()  # the last checkpoint carries the optimizer state
    checkpoints.load_checkpoint(restored, tmp_path / "checkpoints" / "last.weights.h5")
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) > 0


def test_nan_loss_stops_with_clear_error_and_keeps_checkpoint(tmp_path):
    x, y = data()
    model = small_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[RunCheckpoint(tmp_path, 1)])
    before = (tmp_path / "checkpoints" / "last.weights.h5").read_bytes()
    y_bad = y.copy()
    y_bad[5] = np.nan
    with pytest.raises(NonFiniteLossError, match="Loss became nan at epoch 1"):
        model.fit(x, y_bad, epochs=1, batch_size=8, verbose=0,
                  callbacks=[NaNGuard(tmp_path), RunCheckpoint(tmp_path, 1)])
    assert (tmp_path / "checkpoints" / "last.weights.h5").read_bytes() == before

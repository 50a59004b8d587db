"""GroupedAdamW under `model.fit` on the current backend: gradient accumulation,
global-norm clipping, a warmup + cosine schedule, mixed precision, saving."""

import keras
import numpy as np
import pytest

from keras_har.training.optimizers import GroupedAdamW, build_adamw


def small_model():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, activation="tanh", name="body")(inputs)
    outputs = keras.layers.Dense(3, name="predictions")(x)
    return keras.Model(inputs, outputs)


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 6)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")


def schedule():
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=10, warmup_target=0.05, warmup_steps=2
    )


def fit(optimizer, steps=2, seed=0):
    """`steps` batches of 4 with the same initial weights for every call."""
    keras.utils.set_random_seed(seed)
    model = small_model()
    model.compile(optimizer=optimizer, loss="mse")
    x, y = data()
    model.fit(x[: 4 * steps], y[: 4 * steps], batch_size=4, epochs=1, shuffle=False, verbose=0)
    return model


def weights(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}


COMMON = dict(weight_decay=0.1, global_clipnorm=0.01, gradient_accumulation_steps=2)


def test_groups_match_plain_adamw_at_their_rates():
    """With accumulation over 2 batches both gradients are taken at the initial
    weights, so after the single update each group equals plain AdamW run at
    that group's rate (the clip uses the same global norm in every run)."""
    grouped = weights(fit(GroupedAdamW(
        learning_rate=schedule(), no_decay_patterns=None,
        lr_multipliers={"body/kernel": 0.5, "body/bias": 0.5, "predictions/kernel": 2.0,
                        "predictions/bias": 2.0},
        **COMMON,
    )))
    slow = weights(fit(keras.optimizers.AdamW(
        learning_rate=keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=10, warmup_target=0.025, warmup_steps=2), **COMMON)))
    fast = weights(fit(keras.optimizers.AdamW(
        learning_rate=keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=10, warmup_target=0.1, warmup_steps=2), **COMMON)))
    for path in ("body/kernel", "body/bias"):
        np.testing.assert_allclose(grouped[path], slow[path], rtol=1e-5, atol=1e-7, err_msg=path)
    for path in ("predictions/kernel", "predictions/bias"):
        np.testing.assert_allclose(grouped[path], fast[path], rtol=1e-5, atol=1e-7, err_msg=path)


def test_accumulation_waits_for_the_second_batch():
    keras.utils.set_random_seed(0)
    reference = weights(small_model())
    after_one = weights(fit(GroupedAdamW(learning_rate=0.05, **COMMON), steps=1))
    after_two = weights(fit(GroupedAdamW(learning_rate=0.05, **COMMON), steps=2))
    for path, value in reference.items():
        np.testing.assert_array_equal(after_one[path], value)
        assert not np.allclose(after_two[path], value)


def test_unknown_variable_path_is_an_error():
    with pytest.raises(ValueError, match="not_a_layer/kernel"):
        fit(GroupedAdamW(learning_rate=0.01, lr_multipliers={"not_a_layer/kernel": 2.0}))


def test_mixed_precision_loss_scaling():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        optimizer = keras.optimizers.LossScaleOptimizer(GroupedAdamW(
            learning_rate=1.0, weight_decay=0.0,
            lr_multipliers={"body/kernel": 1e-3, "body/bias": 1e-3,
                            "predictions/kernel": 5e-3, "predictions/bias": 5e-3},
        ))
        keras.utils.set_random_seed(0)
        model = small_model()
        before = weights(model)
        model.compile(optimizer=optimizer, loss="mse")
        x, y = data()
        model.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)
        after = weights(model)
    finally:
        keras.config.set_dtype_policy("float32")
    for path, lr in (("body/kernel", 1e-3), ("predictions/kernel", 5e-3)):
        step = np.abs(after[path] - before[path])
        assert np.all(np.isfinite(after[path]))
        np.testing.assert_allclose(np.median(step[step > 0]), lr, rtol=0.05, err_msg=path)


def test_config_and_saved_optimizer_state(tmp_path):
    model = small_model()
    optimizer = build_adamw(model, schedule(), weight_decay=0.05, clip_norm=1.0, grad_accum=2,
                            lr_multipliers={"predictions/kernel": 5.0})
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, GroupedAdamW)
    assert restored.lr_multipliers == {"predictions/kernel": 5.0}
    assert restored.gradient_accumulation_steps == 2 and restored.global_clipnorm == 1.0

    model.compile(optimizer=optimizer, loss="mse")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "run.keras")
    reloaded = keras.saving.load_model(tmp_path / "run.keras")
    assert isinstance(reloaded.optimizer, GroupedAdamW)
    for a, b in zip(model.optimizer.variables, reloaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))

"""AdamW with per-variable learning-rate multipliers (parameter groups).

Keras optimizers take one learning rate. `GroupedAdamW` scales it per variable
-- in the Adam step and in the decoupled weight decay, like torch's param
groups -- and keeps everything else of `keras.optimizers.AdamW`: learning-rate
schedules, `gradient_accumulation_steps`, `global_clipnorm` / `clipnorm`,
`LossScaleOptimizer` wrapping (mixed precision), EMA, `get_config`.

How: the multipliers are resolved to one number per optimizer variable slot at
`build` time, and `update_step(grad, var, lr)` -- the per-variable step that
every backend ends in (JAX and torch through the base loop, TensorFlow inside
`distribution.extended.update`) -- runs with `lr * multiplier`. The weight
decay moves into that same step, so it uses the group's rate as well. (On
torch this means the per-variable path rather than the `torch._foreach` fused
one Keras uses for the plain `AdamW` class.)

Weight decay skips biases, normalisation parameters (every 0-/1-D variable)
and what the model's `no_weight_decay()` names (position / class tokens), as
timm and the official VideoMAE recipe do.

Helpers build the multipliers: `layer_decay_multipliers` (VideoMAE / BEiT
layer-wise decay, with the depth of each variable from the model's
`layer_id(path)`) and `head_multipliers` (the reference baseline's backbone 1e-4 /
head 5e-4, the head from the model's `head_prefixes()`). The model knows its
own variable names; this module knows none.
"""

import re

import keras
from keras import ops

# Variable paths never decayed in any model (besides every 0-/1-D variable):
# the 2-D attention biases of keras' MultiHeadAttention ("/bias$") and norms.
NO_DECAY_PATTERNS = (r"/bias$", r"/gamma$", r"/beta$")


def is_no_decay(variable, patterns=NO_DECAY_PATTERNS):
    """True for 0/1-D variables (biases, norms) and paths matching `patterns`."""
    return len(variable.shape) <= 1 or any(re.search(p, variable.path) for p in patterns)


def model_no_decay_patterns(model):
    """`NO_DECAY_PATTERNS` plus the model's own `no_weight_decay()`."""
    own = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    return NO_DECAY_PATTERNS + tuple(own)


def no_weight_decay_names(model):
    """Paths of the trainable variables of `model` that are not weight-decayed."""
    patterns = model_no_decay_patterns(model)
    return [v.path for v in model.trainable_variables if is_no_decay(v, patterns)]


@keras.saving.register_keras_serializable(package="keras_har")
class GroupedAdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` whose learning rate is scaled per variable.

    Args:
        lr_multipliers: `{variable.path: multiplier}`; unlisted variables use
            1.0. Every listed path must be a variable the optimizer is built
            on (a typo or a different model is an error, not a silent 1.0).
        no_decay_patterns: regexes on `variable.path` of variables excluded
            from weight decay, on top of every 0-/1-D variable. `()` decays
            every variable with 2+ dims; `None` decays everything.
        **kwargs: everything `keras.optimizers.AdamW` takes (`learning_rate`
            may be a schedule; `weight_decay`, `global_clipnorm`,
            `gradient_accumulation_steps`, ...). `exclude_from_weight_decay()`
            still works on top.

    Example:
    ```python
    opt = GroupedAdamW(
        learning_rate=1.0,
        lr_multipliers=head_multipliers(model, head_lr=5e-4, backbone_lr=1e-4),
        weight_decay=0.05,
    )
    ```
    """

    def __init__(self, lr_multipliers=None, no_decay_patterns=NO_DECAY_PATTERNS, **kwargs):
        super().__init__(**kwargs)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}
        self.no_decay_patterns = None if no_decay_patterns is None else tuple(no_decay_patterns)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        paths = {v.path for v in var_list}
        unknown = sorted(set(self.lr_multipliers) - paths)
        if unknown:
            raise ValueError(
                f"lr_multipliers name {len(unknown)} variables the optimizer is not "
                f"built on: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}. "
                "Build the multipliers from the same model instance you train."
            )
        # One entry per variable slot, looked up by index (TensorFlow hands
        # update_step the backend variable, which has no keras path).
        self._lr_scales = [self.lr_multipliers.get(v.path, 1.0) for v in var_list]
        self._decays = [
            self.no_decay_patterns is None or not is_no_decay(v, self.no_decay_patterns)
            for v in var_list
        ]

    def lr_multiplier(self, variable):
        """The learning-rate multiplier of a variable the optimizer was built on."""
        return self._lr_scales[self._get_variable_index(variable)]

    def _use_weight_decay(self, variable):
        if not self._decays[self._get_variable_index(variable)]:
            return False
        return super()._use_weight_decay(variable)

    def _apply_weight_decay(self, variables):
        # Done per variable in update_step, with the variable's own rate.
        return

    def update_step(self, gradient, variable, learning_rate):
        scale = self.lr_multiplier(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        if scale != 1.0:
            lr = lr * scale
        if self.weight_decay is not None and self._use_weight_decay(variable):
            wd = ops.cast(self.weight_decay, variable.dtype)
            self.assign_sub(variable, variable * wd * lr)
        super().update_step(gradient, variable, lr)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lr_multipliers": dict(self.lr_multipliers),
                "no_decay_patterns": None if self.no_decay_patterns is None else list(self.no_decay_patterns),
            }
        )
        return config


def layer_decay_multipliers(model, decay):
    """`{path: decay ** (num_layers + 1 - model.layer_id(path))}` for every
    trainable variable: the patch embedding gets decay^(L+1), block i
    decay^(L-i), the final norms and the head 1.0 -- the official
    `LayerDecayValueAssigner` with L + 2 ids."""
    num_layers = model.num_layers
    return {
        v.path: float(decay ** (num_layers + 1 - model.layer_id(v.path)))
        for v in model.trainable_variables
    }


def head_multipliers(model, head_lr, backbone_lr):
    """`{path: rate}`: `head_lr` for the head (`model.head_prefixes()`),
    `backbone_lr` for everything else. Use with a base learning rate of 1.0
    (or a schedule peaking at 1.0), so the multipliers are the rates themselves."""
    head = tuple(model.head_prefixes())
    return {
        v.path: float(head_lr if v.path.startswith(head) else backbone_lr)
        for v in model.trainable_variables
    }


def build_adamw(model, learning_rate, weight_decay=0.05, clip_norm=None, grad_accum=1,
                layer_decay=1.0, lr_multipliers=None, **kwargs):
    """The recipes' optimizer: `GroupedAdamW` with global-norm clipping,
    gradient accumulation (1 = off) and layer-wise decay (1.0 = off), the
    layer-decay factors multiplied into any `lr_multipliers`."""
    multipliers = dict(lr_multipliers or {})
    if layer_decay is not None and layer_decay != 1.0:
        for path, m in layer_decay_multipliers(model, layer_decay).items():
            multipliers[path] = multipliers.get(path, 1.0) * m
    return GroupedAdamW(
        lr_multipliers=multipliers,
        no_decay_patterns=model_no_decay_patterns(model),
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        global_clipnorm=clip_norm or None,
        gradient_accumulation_steps=grad_accum if grad_accum and grad_accum > 1 else None,
        **kwargs,
    )

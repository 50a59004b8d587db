"""Training utilities: optimizers with parameter groups, schedules, checkpoints, callbacks."""

from keras_har.training.optimizers import GroupedAdamW
from keras_har.training.optimizers import build_adamw
from keras_har.training.optimizers import head_multipliers
from keras_har.training.optimizers import layer_decay_multipliers
from keras_har.training.optimizers import no_weight_decay_names

"""keras-hub `PresetLoader`s for checkpoints of other libraries.

`TransformersPresetLoader` (a directory `save_pretrained` wrote, picked by
its `model_type`) and `TimmPresetLoader` (a timm hub directory or a bare
state-dict file) run a converter module of this package through keras-hub's
protocol:

    backbone_cls                              the Keras backbone class
    open_state(path, config)                  the checkpoint's tensors (a StateDict)
    convert_backbone_config(config, state, **options) -> backbone kwargs
    convert_weights(backbone, state, config)
    convert_head(task, state, config, keep_head)  the head (and any pooling norm)
    HEAD_KEYS                                 the head's tensors (skipped when replaced)
    head_num_classes(state), label_names(config), normalization(path, config)
    UNUSED_PREFIXES                           tensors ignored with a log line

Every tensor is used, deliberately skipped, or named in an error. Only
`keras_har.utils.preset_utils.get_preset_loader` creates these loaders, finding
them by format name among the `keras_har.preset_loaders` entry points
(pyproject.toml); nothing imports this module.
"""

import inspect
import logging

from keras_har.converters.timm import convert_vit as timm_vit
from keras_har.converters.transformers import convert_videomae
from keras_har.converters.transformers import convert_vit as transformers_vit
from keras_har.models.video_classifier import VideoClassifier
from keras_har.utils.keras_hub_compat import PresetLoader
from keras_har.utils.preset_utils import PresetFormatError, check_image_size, resolve_num_classes

logger = logging.getLogger("keras_har")

TRANSFORMERS_CONVERTERS = {"videomae": convert_videomae, "vit": transformers_vit}


def _parameters(function):
    return set(inspect.signature(function).parameters)


class ConverterPresetLoader(PresetLoader):
    """A checkpoint read through one converter module (see the module docstring)."""

    converter = None

    def __init__(self, path, config):
        super().__init__(str(path), config)
        self.path = path
        self._state = None

    @property
    def state(self):
        if self._state is None:
            self._state = self.converter.open_state(self.path, self.config)
        return self._state

    def check_backbone_class(self):
        return self.converter.backbone_cls

    def load_backbone(self, cls, load_weights, check_unused=False, **kwargs):
        options = _parameters(self.converter.convert_backbone_config) - {"config", "state"}
        converter_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in options}
        backbone_config = self.converter.convert_backbone_config(self.config, self.state, **converter_kwargs)
        backbone = cls(**{**backbone_config, **kwargs})
        if load_weights:
            self.converter.convert_weights(backbone, self.state, self.config)
            if check_unused:  # the encoder alone: a head (and its norm) is left out
                self.state.skip(*self.converter.HEAD_KEYS, "fc_norm.weight", "fc_norm.bias")
                self.state.check_all_used(ignore_prefixes=self.converter.UNUSED_PREFIXES)
        return backbone

    def load_task(self, cls, load_weights, load_task_weights=True, num_classes=None, labels=None,
                  **kwargs):
        """A classifier on the converted backbone: the checkpoint's head when
        it fits `num_classes` (or none is asked for), else a new one. Other
        tasks (the VideoMAE pre-trainer) are the converter's `convert_task`."""
        if not issubclass(cls, VideoClassifier):
            convert_task = getattr(self.converter, "convert_task", None)
            if convert_task is None:
                raise PresetFormatError(f"{self.path}: a {cls.__name__} cannot be made from this checkpoint.")
            return convert_task(cls, self, load_weights, **kwargs)
        task_options = _parameters(cls.__init__) - {"self", "backbone", "num_classes", "labels",
                                                   "preprocessor", "image_mean", "image_std", "kwargs"}
        task_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in task_options}
        # image_size resamples a timm position table and sizes a VideoMAE; elsewhere it must match.
        image_size = None if self._takes("image_size", cls.backbone_cls) else kwargs.pop("image_size", None)
        conv, state = self.converter, self.state
        ckpt_classes = conv.head_num_classes(state)
        num_classes, labels = resolve_num_classes(num_classes, labels)
        keep_head = bool(load_task_weights) and ckpt_classes is not None and num_classes in (None, ckpt_classes)
        if num_classes is None:
            if ckpt_classes is None:
                raise ValueError(
                    f"{self.path} has no classification head ({self.config.get('architectures') or 'no head'}): "
                    "pass num_classes or labels."
                )
            num_classes = ckpt_classes
        if keep_head and labels is None:
            names = conv.label_names(self.config)
            labels = names if names and len(names) == num_classes else None
        backbone = self.load_backbone(cls.backbone_cls, load_weights, **kwargs)
        normalization = conv.normalization(self.path, self.config)  # else the task's default
        if normalization is not None:
            task_kwargs.update(image_mean=normalization[0], image_std=normalization[1])
        task = cls(backbone, num_classes=num_classes, labels=labels, **task_kwargs)
        check_image_size(task, image_size, self.path)
        if not load_weights:
            return task
        if ckpt_classes is not None and not keep_head:
            logger.warning("%s: replacing the checkpoint's %d-way head with a new %d-way head "
                           "(what ignore_mismatched_sizes=True does).", self.path, ckpt_classes, num_classes)
        elif ckpt_classes is None:
            logger.info("%s: no head in the checkpoint; a new %d-way head.", self.path, num_classes)
        conv.convert_head(task, state, self.config, keep_head=keep_head)
        if not keep_head:
            state.skip(*conv.HEAD_KEYS)
        state.check_all_used(ignore_prefixes=conv.UNUSED_PREFIXES)
        return task

    def _takes(self, name, backbone_cls):
        """Whether the converter or the backbone takes the argument `name`."""
        return name in _parameters(self.converter.convert_backbone_config) | _parameters(backbone_cls.__init__)


class TransformersPresetLoader(ConverterPresetLoader):
    """A transformers checkpoint directory, converted by `model_type`."""

    def __init__(self, path, config):
        model_type = config.get("model_type")
        if model_type not in TRANSFORMERS_CONVERTERS:
            raise PresetFormatError(
                f"{path}/config.json: model_type {model_type!r} is not one keras-har converts "
                f"({', '.join(sorted(TRANSFORMERS_CONVERTERS))})."
            )
        self.converter = TRANSFORMERS_CONVERTERS[model_type]
        super().__init__(path, config)


class TimmPresetLoader(ConverterPresetLoader):
    """A timm ViT hub directory or a bare state-dict file."""

    converter = timm_vit

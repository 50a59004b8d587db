"""transformers ViT checkpoints (`google/vit-*`) -> keras-hub `ViTBackbone` + our head.

The backbone is keras-hub's own converter (`convert_vit`), run over our
`StateDict` (so every tensor is used or named); the `classifier` head of a
`ViTForImageClassification` is kept when its size fits. The input size is
the checkpoint's (keras-hub's ViT does not resample its position table).
"""

from keras_har.converters.checkpoint import (
    StateDict,
    StateDictPort,
    assign,
    load_state_dict,
    read_preprocessor_normalization,
)
from keras_har.utils.keras_hub_compat import transformers_convert_vit as convert_vit

backbone_cls = convert_vit.backbone_cls
HEAD_KEYS = ("classifier.weight", "classifier.bias")
UNUSED_PREFIXES = ("pooler.", "vit.pooler.")  # ViTModel's pooler: not used


def open_state(path, config):
    return StateDict(load_state_dict(path), source=str(path))


def convert_backbone_config(config, state=None):
    return convert_vit.convert_backbone_config(config)


def convert_weights(backbone, state, config):
    convert_vit.convert_weights(backbone, StateDictPort(state), config)


def normalization(path, config):
    return read_preprocessor_normalization(path)


def head_num_classes(state):
    return int(state.tensors["classifier.weight"].shape[0]) if "classifier.weight" in state else None


def label_names(config):
    id2label = config.get("id2label") or {}
    return [id2label.get(str(i), id2label.get(i)) for i in range(len(id2label))] or None


def convert_head(classifier, state, config, keep_head=True):
    if not keep_head:
        return
    dim, classes = classifier.predictions.kernel.shape
    assign(classifier.predictions.kernel, state.take("classifier.weight", (classes, dim)).T,
           "classifier.weight")
    assign(classifier.predictions.bias, state.take("classifier.bias", (classes,)), "classifier.bias")

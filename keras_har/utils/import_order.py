"""The one import-order workaround keras-har needs.

triton (pulled in by torch's CUDA wheels and imported by `torch._dynamo`)
crashes the process when it is loaded after TensorFlow, which keras-hub
imports. Loading it first avoids that; anything that may bring both torch
(transformers, timm, the torch backend) and TensorFlow into one process
calls this before importing keras-hub or TensorFlow.
"""


def load_torch_before_tensorflow():
    """Import `torch._dynamo` now, when torch is installed (a no-op otherwise)."""
    try:
        import torch._dynamo  # noqa: F401
    except ImportError:
        pass

"""Converters of transformers checkpoints (`save_pretrained` directories), one module per `model_type`."""

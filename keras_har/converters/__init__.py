"""Weight converters from other frameworks' checkpoints, kept apart from the models."""

"""Named architecture sizes (timm style): `{"tiny": {...}, "base": {...}}`
tables that `from_architecture(name, **overrides)` builds a random-init
model from."""


def architecture_config(architectures, name, family, **overrides):
    """The constructor arguments of the architecture `name` of `family`, with
    `overrides` on top; an unknown name is a `ValueError` listing the known ones."""
    if name not in architectures:
        raise ValueError(
            f"Unknown {family} architecture {name!r}; known: {', '.join(architectures)}."
        )
    return {**architectures[name], **overrides}

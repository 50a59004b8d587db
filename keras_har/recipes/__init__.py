"""The training recipes, by command name: `keras-har train NAME`,
`keras-har pretrain`, `recipes/*.py`, or `get_recipe(NAME).main(argv)`.

Each module defines one `keras_har.training.recipe.Recipe` (its defaults,
flags, model and phases) as `RECIPE`, and `main(argv)`. Modules are imported
on first use: listing the names imports no Keras.
"""

import importlib

# `keras-har train NAME` -> the module defining it.
TRAIN_RECIPES = {
    "videomae-two-phase": "keras_har.recipes.videomae_two_phase",
    "baseline-vit-small": "keras_har.recipes.baseline_vit_small",
}
# `keras-har pretrain`.
PRETRAIN_RECIPE = "videomae-pretrain"
RECIPES = {**TRAIN_RECIPES, PRETRAIN_RECIPE: "keras_har.recipes.videomae_pretrain"}


def get_recipe(name):
    """The `Recipe` named `name` (a key of `RECIPES`)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; the recipes are {', '.join(RECIPES)}.")
    return importlib.import_module(RECIPES[name]).RECIPE

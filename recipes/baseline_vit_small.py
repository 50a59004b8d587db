"""The mean-pooled ViT-Small baseline: `keras-har train baseline-vit-small`.

    KERAS_BACKEND=jax python recipes/baseline_vit_small.py            # built-in synthetic data
    KERAS_BACKEND=jax python recipes/baseline_vit_small.py --help     # every flag

The recipe is `keras_har.recipes.baseline_vit_small`; this script is the same command
as `keras-har train baseline-vit-small`, with the same flags.
"""

if __name__ == "__main__":
    import sys

    from keras_har.cli import main

    sys.exit(main(["train", "baseline-vit-small", *sys.argv[1:]]))

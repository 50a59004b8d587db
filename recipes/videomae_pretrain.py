"""VideoMAE masked-autoencoder pre-training: `keras-har pretrain`.

    KERAS_BACKEND=jax python recipes/videomae_pretrain.py            # built-in synthetic data
    KERAS_BACKEND=jax python recipes/videomae_pretrain.py --help     # every flag

The recipe is `keras_har.recipes.videomae_pretrain`; this script is the same command
as `keras-har pretrain`, with the same flags.
"""

if __name__ == "__main__":
    import sys

    from keras_har.cli import main

    sys.exit(main(["pretrain", *sys.argv[1:]]))

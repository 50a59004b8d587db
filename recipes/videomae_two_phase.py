"""VideoMAE two-phase fine-tuning with 6-view test-time augmentation: `keras-har train videomae-two-phase`.

    KERAS_BACKEND=jax python recipes/videomae_two_phase.py            # built-in synthetic data
    KERAS_BACKEND=jax python recipes/videomae_two_phase.py --help     # every flag

The recipe is `keras_har.recipes.videomae_two_phase`; this script is the same command
as `keras-har train videomae-two-phase`, with the same flags.
"""

if __name__ == "__main__":
    import sys

    from keras_har.cli import main

    sys.exit(main(["train", "videomae-two-phase", *sys.argv[1:]]))

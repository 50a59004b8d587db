"""`load_classifier(preset)`: whichever video classifier a preset holds."""

from keras_har.models.video_classifier import VideoClassifier


def load_classifier(preset, **kwargs):
    """`VideoClassifier.from_preset(preset, **kwargs)`: the class (VideoMAE or
    the mean-pooled ViT) is the one the preset's format and backbone say."""
    return VideoClassifier.from_preset(preset, **kwargs)

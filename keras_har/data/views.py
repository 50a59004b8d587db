"""The test-view protocols, named once for the CLI, evaluation and the loaders.

User-facing names (`keras-har --views`, `keras_har.evaluate(views=...)`):
"single", "tta" (the reference protocol's 6 views) and "official" (VideoMAE's `num_clips`
temporal clips x 3 crops). The loaders also take "tta3", "tta6" and "all"
(every protocol's views of a video from one decode: the single view, the 6
TTA views of the centred clip, then the official clips x 3 crops; see
`keras_har.evaluation.evaluate_protocols`). Imports nothing heavy: the CLI
reads it to build its parser.
"""

OFFICIAL_CLIPS = 5  # VideoMAE's Kinetics protocol: 5 clips x 3 crops
# Loader protocol -> views per clip ("official": 3 crops per temporal clip).
CROPS = {"single": 1, "tta3": 3, "tta6": 6, "official": 3, "all": 3}
# User-facing names -> loader protocol.
ALIASES = {"single": "single", "tta": "tta6", "tta6": "tta6", "tta3": "tta3", "official": "official",
           "all": "all"}
COMMAND_LINE_VIEWS = ("single", "tta", "official")
HELP = ("single = one centred clip, centre crop; tta = the reference protocol's 6 views (left/top, centre, "
        "right/bottom crops of the short-edge-resized frames, each also flipped); official = "
        "VideoMAE's protocol, --num-clips evenly spaced clips x those 3 crops. The logits of "
        "the views of a video are averaged for tta, their softmax probabilities for official.")


def loader_views(views):
    """The loader's name of a view protocol ("tta" -> "tta6")."""
    if views not in ALIASES:
        raise ValueError(f"views must be one of {sorted(ALIASES)}, got {views!r}.")
    return ALIASES[views]


def num_views(views, num_clips=1):
    """Views per video: crops x temporal clips (clips count only for "official")."""
    views = loader_views(views)
    if views == "all":
        return 1 + 6 + CROPS["official"] * num_clips
    return CROPS[views] * (num_clips if views == "official" else 1)

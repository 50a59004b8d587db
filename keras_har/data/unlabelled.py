"""Unlabelled video for masked-autoencoder pre-training, and its loader.

Sources (labels, where there are any, are ignored):
  * `UnlabelledVideos.from_folder(root)`: every video under `root`, searched
    recursively, whatever the layout;
  * `UnlabelledVideos.from_csv(path)`: a CSV whose first column is a video path
    (an optional `path` header; further columns are ignored);
  * `UnlabelledVideos.from_dataset(index)`: any labelled index, e.g. the train
    split of `HMDB51` / `UCF101`.

`keras_har.data.make_loader(..., mask_generator=...)` gives batches `{"videos": (B, T, S, S, 3) float32,
"bool_masked_pos": (B, tokens) bool}` for `VideoMAEPretrainer.fit`, from grain
or tf.data alike, with the per-sample code of the labelled loader
(`ClipSampler`): the clip start, the multi-scale crop, the flip and the mask
are all drawn from one generator seeded with (seed, epoch, video), so a run is
reproducible and a resumed run sees the same batches. Training clips get
VideoMAE's pre-training transform (`clip_transforms.pretrain_clip`, the same
crop and flip for every frame; no Mixup); evaluation clips (held-out videos,
e.g. for reconstructions) the centre crop and a fixed mask per video.
"""

import csv
import pathlib

import numpy as np

from keras_har.data import clip_transforms, decoding
from keras_har.data.normalization import normalize
from keras_har.data.pipeline import BadVideoLog, BatchFinisher, ClipSampler, VideoLoader, eval_views
from keras_har.data.splits import VIDEO_EXTENSIONS, DatasetIndexError, VideoDataset, check_files_exist

UNLABELLED = ["unlabelled"]


class UnlabelledVideos(VideoDataset):
    """Video paths without labels (every item has label 0 of one class)."""

    def __init__(self, paths, name="videos"):
        super().__init__([(p, 0) for p in paths], UNLABELLED, name=name)

    @classmethod
    def from_folder(cls, root):
        root = pathlib.Path(root)
        if not root.is_dir():
            raise DatasetIndexError(f"Folder {root} does not exist.")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if not paths:
            raise DatasetIndexError(f"{root}: no videos ({', '.join(VIDEO_EXTENSIONS)}) in it or below it.")
        return cls(paths, name=str(root))

    @classmethod
    def from_csv(cls, path, root=None, missing="error"):
        """Paths in the first column; relative ones are taken from `root` (default: the CSV's folder)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise DatasetIndexError(f"CSV list {path} does not exist.")
        root = pathlib.Path(root) if root else path.parent
        paths = []
        with open(path, newline="") as f:
            for lineno, row in enumerate(csv.reader(f), 1):
                if not row or not row[0].strip():
                    continue
                if lineno == 1 and row[0].strip().lower() == "path":
                    continue
                video = pathlib.Path(row[0].strip())
                paths.append(video if video.is_absolute() else root / video)
        items = check_files_exist([(p, 0) for p in paths], str(path), missing)
        if not items:
            raise DatasetIndexError(f"{path}: no video paths.")
        return cls([p for p, _ in items], name=str(path))

    @classmethod
    def from_dataset(cls, dataset):
        """The videos of a labelled index (e.g. `HMDB51(..., subset="train")`), labels dropped."""
        return cls(dataset.paths, name=f"{dataset.name} (labels ignored)")


class MaskedClipSampler(ClipSampler):
    """`ClipSampler` whose `y` is the token mask (float32 0/1) of the clip."""

    def __init__(self, items, *, mask_generator, flip_prob=0.5, scales=clip_transforms.MULTI_SCALES, **kwargs):
        super().__init__(items, num_classes=mask_generator.num_tokens, **kwargs)
        self.mask_generator = mask_generator
        self.flip_prob = flip_prob
        self.scales = tuple(scales)

    def load(self, index, epoch):
        path = self.items[index][0]
        rng = np.random.default_rng([self.seed, epoch if self.training else 0, index])
        if self.training:
            frames = decoding.read_clip(path, lambda count: decoding.train_indices(
                count, self.num_frames, self.sampling_rate, rng))
            clip = clip_transforms.pretrain_clip(frames, self.image_size, rng, self.flip_prob, self.scales)
        else:
            clip = eval_views(path, self.num_frames, self.sampling_rate, self.image_size)
        x = normalize(clip, self.mean, self.std)
        return x, self.mask_generator(rng).astype(np.float32)


def as_model_inputs(batch):
    """A grain batch `(x, mask)` -> the pretrainer's input dict."""
    x, mask = batch
    return {"videos": x, "bool_masked_pos": np.asarray(mask).astype(bool)}


class MaskedVideoLoader(VideoLoader):
    """`VideoLoader` whose datasets yield the pretrainer's input dicts."""

    def _model_inputs(self, ds):
        if self.frontend == "tf":
            import tensorflow as tf

            return ds.map(lambda x, mask: {"videos": x, "bool_masked_pos": tf.cast(mask, tf.bool)})
        return ds.map(as_model_inputs)

    def __iter__(self):
        """Input dicts of one epoch, as numpy (the epoch's workers are closed
        when the loop ends or is left)."""
        ds = self.build(0, 1)
        batches = ds.as_numpy_iterator() if self.frontend == "tf" else ds
        try:
            for batch in batches:
                yield {key: np.asarray(value) for key, value in batch.items()}
        finally:
            self.close()


def masked_loader(dataset, *, training, batch_size, mask_generator, num_frames, sampling_rate, image_size,
                  mean, std, flip_prob, scales, loader, workers, seed, drop_remainder, on_error, epochs,
                  bad_video_log, shard_index, shard_count):
    """`keras_har.data.make_loader(..., mask_generator=...)`: masked-autoencoder
    batches of `dataset` (any index; labels ignored)."""
    scales = clip_transforms.MULTI_SCALES if scales is None else scales
    sampler = MaskedClipSampler(
        dataset.items, mask_generator=mask_generator, flip_prob=flip_prob, scales=scales,
        training=training, num_frames=num_frames, sampling_rate=sampling_rate, image_size=image_size,
        mean=mean, std=std, seed=seed, on_error=on_error, bad_log=BadVideoLog(bad_video_log),
        shard_index=shard_index, shard_count=shard_count,
    )
    if drop_remainder is None:
        drop_remainder = training
    return MaskedVideoLoader(sampler, BatchFinisher(seed=seed), batch_size, epochs if training else 1,
                             drop_remainder, loader, workers)

"""`make_loader`: the one factory of keras-har's loaders, labelled
(`keras_har.data.pipeline`) or masked for pre-training
(`keras_har.data.unlabelled`)."""

from keras_har.data.pipeline import BadVideoLog, BatchFinisher, ClipSampler, VideoLoader
from keras_har.data.unlabelled import masked_loader
from keras_har.data.views import num_views


def make_loader(dataset, *, training, batch_size, num_frames=16, sampling_rate=2, image_size=224,
                mean=None, std=None, num_classes=None,
                consistent=True, mixup_alpha=0.0, cutmix_alpha=0.0, mixup_prob=1.0,
                switch_prob=0.5, views="single", num_clips=1,
                loader="grain", workers=2, seed=0, drop_remainder=None, on_error="skip",
                epochs=None, with_index=False, with_weights=False, bad_video_log=None, shard_index=0,
                shard_count=1, mask_generator=None, flip_prob=None, scales=None):
    """Batches of `dataset` (any index with `.items` and `.class_names`), or
    masked-autoencoder batches of it when `mask_generator` is given.

    Batches are `(x, y)`: `x` float32 `(B, T, S, S, 3)` normalised with
    `mean`/`std` on [0, 1] RGB (`(B, V, T, S, S, 3)` for multi-view), `y`
    float32 `(B, num_classes)` one-hot (soft with Mixup/CutMix or label
    smoothing). With `with_weights=True` (evaluation) a third element, float32
    `(B,)`, is 0 for a sample that replaces an unreadable video and 1 for the
    others: as `fit`'s validation sample weights it keeps validation metrics
    to the videos really read. With `with_index=True` a third element, int64 `(B,)`, gives the
    `dataset.items` index of each sample (for per-video predictions; do not
    pass those batches to `model.fit`).

    Args:
        dataset: an index such as `HMDB51`, `UCF101`, `VideoFolder`, `VideoCSV`.
        training: random clip start, clip-consistent random resized crop and
            flip (per frame with `consistent=False`, the reference baseline's), a new
            order every epoch, Mixup/CutMix when their alphas are > 0, the last
            partial batch dropped. Otherwise: centred clip(s), `views`, no
            Mixup, `dataset.items` order, the last partial batch kept.
        views: "single" (short edge then centre crop), "tta3", "tta6"
            (left/top, centre, right/bottom crops of the short-edge-resized
            frames, then the same three flipped) or "official" (`num_clips`
            evenly spaced clips x those 3 crops, clip-major).
        mean, std: per-channel normalisation: the model's `image_mean` /
            `image_std` (its preprocessor's; VideoMAE: ImageNet's, the timm ViT
            baseline: 0.5, 0.5).
        mixup_alpha, cutmix_alpha, mixup_prob, switch_prob: timm's `Mixup`
            in batch mode (training only). Label smoothing is the loss's
            (`keras.losses.CategoricalCrossentropy(label_smoothing=...)`).
        loader: "grain" (worker processes) or "tf" (tf.data, parallel map).
        workers: grain worker processes or tf.data parallel calls; 0 = inline.
        seed: the order, clip starts, crops, flips and Mixup draws; the same
            seed gives the same batches from grain and tf.data.
        epochs: how many epochs `for_fit()` streams (None: endless, so pass
            `steps_per_epoch=loader.steps_per_epoch` to `fit`, as always).
        on_error: "skip" an unreadable video (warned, replaced by the next one
            in `items`, counted in `bad_videos()`), or "raise" naming the file.
        bad_video_log: a file to append skipped videos to (default: a temp file
            shared by the workers).
        shard_index, shard_count: this process's part of every epoch in a
            multi-host job (`keras_har.training.distribution.process_shard()`):
            every `shard_count`-th video of the epoch's order from position
            `shard_index`, so shards are disjoint and together cover the
            epoch. In training every shard gets `len(dataset) // shard_count`
            videos (the same number of steps on every process); `batch_size`
            is the per-process batch.
        mask_generator: pre-training (`VideoMAEPretrainer.mask_generator()`):
            batches are the pretrainer's `{"videos", "bool_masked_pos"}`
            dicts, labels ignored, with the pre-training crop: multi-scale
            `scales` (VideoMAE's `GroupMultiScaleCrop`: 1, .875, .75, .66)
            and a flip with probability `flip_prob` (default 0.5; the official
            scripts: 0). Labels, views and Mixup do not apply.
    """
    if loader not in ("grain", "tf"):
        raise ValueError(f"loader must be 'grain' or 'tf', got {loader!r}.")
    if mean is None or std is None:
        raise ValueError("make_loader needs mean= and std=: the model's image_mean and image_std "
                         "(the normalisation of its video converter).")
    if mask_generator is not None:
        return masked_loader(
            dataset, training=training, batch_size=batch_size, mask_generator=mask_generator,
            num_frames=num_frames, sampling_rate=sampling_rate, image_size=image_size, mean=mean, std=std,
            flip_prob=0.5 if flip_prob is None else flip_prob, scales=scales, loader=loader, workers=workers,
            seed=seed, drop_remainder=drop_remainder, on_error=on_error, epochs=epochs,
            bad_video_log=bad_video_log, shard_index=shard_index, shard_count=shard_count)
    num_classes = num_classes or len(dataset.class_names)
    if training and views != "single":
        raise ValueError("multi-view batches are for evaluation (training=False).")
    num_views(views, num_clips)  # validates
    sampler = ClipSampler(
        dataset.items, training=training, num_frames=num_frames, sampling_rate=sampling_rate,
        image_size=image_size, mean=mean, std=std, num_classes=num_classes,
        consistent=consistent, views=views, num_clips=num_clips, seed=seed,
        on_error=on_error, bad_log=BadVideoLog(bad_video_log),
        shard_index=shard_index, shard_count=shard_count,
    )
    finisher = BatchFinisher(mixup_alpha if training else 0.0, cutmix_alpha if training else 0.0,
                             mixup_prob, switch_prob, seed, with_index, with_weights and not training)
    if drop_remainder is None:
        drop_remainder = training
    return VideoLoader(sampler, finisher, batch_size, epochs if training else 1, drop_remainder,
                       loader, workers)

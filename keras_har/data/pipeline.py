"""Batches for `model.fit` and evaluation, from grain (default) or tf.data.

Both front-ends run the same per-sample code (`ClipSampler`) and the same
per-batch Mixup (`BatchFinisher`). Every random choice is seeded from
(seed, epoch, video) or (seed, batch position), so a run is reproducible for a
seed, each epoch sees a new order and new augmentations, and grain and
tf.data give identical batches.

Batches: `x` float32 `(B, T, H, W, 3)`, channels last, normalised; with
`views="tta6"` / `"tta3"` / `"official"` it is `(B, V, T, H, W, 3)`. `y` is
float32 one-hot `(B, num_classes)` (soft with Mixup or label smoothing).
Evaluation batches follow `dataset.items` order and keep the last partial batch.
"""

import logging
import math
import os
import pathlib
import signal
import tempfile
import threading
import time
import uuid

import numpy as np

from keras_har.data import clip_transforms, decoding
from keras_har.data.mixing import mix_batch, one_hot
from keras_har.data.normalization import normalize
from keras_har.data.shared_batches import release_at_exit, release_worker_batches
from keras_har.data.views import num_views
from keras_har.data.worker_processes import without_main_script

logger = logging.getLogger("keras_har")

MAX_REPLACEMENTS = 16



def _view_frames(path, num_frames, sampling_rate, views, num_clips):
    """Decoded frames for the test views: `(clips, T, H, W, 3)` uint8; for
    "all", the centred clip then the `num_clips` official ones, in one decode."""
    if views == "all":
        def indices(count):
            return np.concatenate([decoding.eval_indices(count, num_frames, sampling_rate, 1),
                                   decoding.eval_indices(count, num_frames, sampling_rate, num_clips)])
        return decoding.read_clip(path, indices)
    clips = num_clips if views == "official" else 1
    return decoding.read_clip(
        path, lambda count: decoding.eval_indices(count, num_frames, sampling_rate, clips)
    )


def eval_views(path, num_frames, sampling_rate, image_size, views="single", num_clips=1):
    """uint8 test views of one video: `(T, S, S, 3)` for "single", else `(V, T, S, S, 3)`.

    View order: "tta3" = left/top, centre, right/bottom crops; "tta6" = those
    three, then the same three flipped; "official" = for each of the `num_clips`
    evenly spaced clips (in time order) its three crops; "all" = the single
    view, the 6 "tta6" views, then the "official" views, from one decode.
    """
    n = num_views(views, num_clips)
    clips = _view_frames(str(path), num_frames, sampling_rate, views, num_clips)
    if views == "all":  # single, tta6 (of the centred clip), then official
        return np.concatenate([clip_transforms.multi_view_clip(clips[0], image_size, 1),
                               clip_transforms.multi_view_clip(clips[0], image_size, 6)]
                              + [clip_transforms.multi_view_clip(c, image_size, 3) for c in clips[1:]])
    if views == "official":
        return np.concatenate([clip_transforms.multi_view_clip(c, image_size, 3) for c in clips])
    out = clip_transforms.multi_view_clip(clips[0], image_size, n)
    return out[0] if n == 1 else out


def load_video_views(path, *, num_frames, sampling_rate, image_size, mean, std,
                     views="single", num_clips=1):
    """One video, normalised and ready for a model: `(T, S, S, 3)` for a single
    view, else `(V, T, S, S, 3)`. Raises `VideoReadError` naming the file."""
    frames = eval_views(path, num_frames, sampling_rate, image_size, views, num_clips)
    return normalize(frames, mean, std)


def warn_skipped(entries, when, where=None):
    """One warning for `[path, reason]` entries of unreadable videos skipped
    `when` (e.g. "this epoch"), naming up to 3 files (and `where` the list is)."""
    if not entries:
        return
    names = sorted({path for path, *_ in entries})
    logger.warning("skipped %d unreadable video reads %s (%d files: %s%s)%s", len(entries), when,
                   len(names), ", ".join(names[:3]), " ..." if len(names) > 3 else "",
                   f"; list in {where}" if where else "")


class BadVideoLog:
    """Unreadable videos met by any worker process, one `path<TAB>reason` line
    each, appended to a file (created on the first bad video; by default a
    fresh name in the temp dir)."""

    def __init__(self, path=None):
        if path is None:
            path = pathlib.Path(tempfile.gettempdir()) / f"keras_har_bad_videos_{uuid.uuid4().hex[:12]}.txt"
        self.path = str(path)

    def add(self, video, error):
        # Names that are not UTF-8 (archives from other systems) round-trip.
        with open(self.path, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(f"{video}\t{error}\n")

    def entries(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8", errors="surrogateescape") as f:
            return [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]


def init_worker(worker_index=0, worker_count=1):
    """In each loader worker process: OpenCV on one thread (the workers are
    the parallelism; its own threads would oversubscribe the cores), the video
    decoder on the cores the workers leave (one each when there are as many
    workers as cores), and a watchdog that ends the worker within a second when
    its parent process is gone (a SIGKILLed run must not leave workers holding
    memory); SIGINT and SIGTERM are ignored (the parent stops the workers)."""
    import cv2

    cv2.setNumThreads(1)
    decoding.set_threads(max(1, (os.cpu_count() or 1) // max(1, worker_count)))
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None:
        start_parent_watchdog(parent.pid)
        # Ctrl-C reaches the whole process group: the parent stops at a step
        # boundary and closes its workers; a worker never acts on it (nor on SIGTERM).
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def start_parent_watchdog(parent_pid, interval=0.5):
    """A daemon thread that exits the process as soon as its parent is no
    longer `parent_pid` (the parent died and the process was re-parented; the
    pid is the one multiprocessing recorded when it started the process, so a
    parent that died before this worker got here is noticed too)."""

    def watch():
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="keras_har-parent-watchdog", daemon=True).start()


class ClipSampler:
    """Stream slot -> `(x, one-hot y, item index, slot)` for one video.

    Slot `s` is the `s % per_epoch`-th video of epoch `s // per_epoch`'s order
    (a fresh permutation per epoch in training, `items` order otherwise). With
    `shard_count > 1` (one shard per process of a multi-host job) it is the
    `(s % per_epoch) * shard_count + shard_index`-th: the shards take every
    `shard_count`-th position of the same order, so they are disjoint, and
    step k of the shards together reads the videos of step k of the unsharded
    loader with a `shard_count` times larger batch.
    Randomness is seeded from `(seed, epoch, item index)`, so a sample does
    not depend on which worker or front-end computes it. Picklable (grain
    workers receive a copy). A video that cannot be read is logged and
    replaced by the next one in `items` (on_error="skip"), or raises naming the
    file (on_error="raise").
    """

    def __init__(self, items, *, training, num_frames, sampling_rate, image_size, mean, std,
                 num_classes, consistent=True, views="single", num_clips=1, seed=0,
                 on_error="skip", bad_log=None, per_epoch=None,
                 shard_index=0, shard_count=1):
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}.")
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index} and {shard_count}.")
        self.items = list(items)
        self.paths = {str(p) for p, _ in self.items}
        self.training = training
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.image_size = image_size
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.num_classes = num_classes
        self.consistent = consistent
        self.views = views
        self.num_clips = num_clips
        self.seed = seed
        self.on_error = on_error
        self.bad_log = bad_log
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.per_epoch = per_epoch or self.shard_size(drop_remainder=False)
        self._warned = set()
        self._order = (None, None)

    def order(self, epoch):
        """The item order of an epoch: a fresh permutation in training."""
        if self._order[0] != epoch:
            n = len(self.items)
            order = (np.random.default_rng([self.seed, epoch, 7]).permutation(n)
                     if self.training else np.arange(n))
            self._order = (epoch, order)
        return self._order[1]

    def shard_size(self, drop_remainder):
        """Videos per epoch in this shard: all of them with one shard; with
        several, the same number in every shard when `drop_remainder` (so every
        process runs as many steps), else every video exactly once."""
        n = len(self.items)
        if drop_remainder:
            return n // self.shard_count
        return len(range(self.shard_index, n, self.shard_count))

    def item_at(self, slot):
        """`(epoch, item index)` of a stream slot."""
        epoch, offset = divmod(int(slot), self.per_epoch)
        return epoch, int(self.order(epoch)[offset * self.shard_count + self.shard_index])

    def load(self, index, epoch):
        """Normalised `x` and one-hot `y` of item `index` (raises on a bad video)."""
        path, label = self.items[index]
        if self.training:
            rng = np.random.default_rng([self.seed, epoch, index])
            frames = decoding.read_clip(path, lambda count: decoding.train_indices(
                count, self.num_frames, self.sampling_rate, rng))
            if self.consistent:
                clip = clip_transforms.train_clip(frames, self.image_size, rng)
            else:
                clip = clip_transforms.per_frame_random_crops(frames, self.image_size, rng)
        else:
            clip = eval_views(path, self.num_frames, self.sampling_rate, self.image_size,
                              self.views, self.num_clips)
        x = normalize(clip, self.mean, self.std)
        y = one_hot([label], self.num_classes)[0]
        return x, y

    def __call__(self, slot):
        import cv2

        epoch, index = self.item_at(slot)
        for attempt in range(MAX_REPLACEMENTS):
            try:
                x, y = self.load(index, epoch)
                # `real` is 0 for a replacement of an unreadable video: a weight
                # that keeps it out of validation metrics.
                return x, y, np.int64(index), np.int64(slot), np.float32(attempt == 0)
            except (decoding.VideoReadError, cv2.error) as e:
                path = self.items[index][0]
                reason = str(e).strip().splitlines()[0]
                if self.on_error == "raise":
                    raise decoding.VideoReadError(
                        reason if reason.startswith(str(path)) else f"{path}: {reason}"
                    ) from None
                if self.bad_log is not None:
                    self.bad_log.add(path, reason)
                if path not in self._warned:
                    self._warned.add(path)
                    logger.warning("skipping unreadable video %s (%s)", path, reason)
                index = (index + 1) % len(self.items)
        raise decoding.VideoReadError(
            f"{MAX_REPLACEMENTS} consecutive videos up to {self.items[index][0]} could not be read."
        )


class BatchFinisher:
    """The per-batch step: Mixup/CutMix (seeded from the batch's first slot),
    then `(x, y)`, `(x, y, item_index)` or `(x, y, sample_weight)` (0 for a
    replacement of an unreadable video, 1 otherwise)."""

    def __init__(self, mixup_alpha=0.0, cutmix_alpha=0.0, prob=1.0, switch_prob=0.5, seed=0,
                 with_index=False, with_weights=False):
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.seed = seed
        self.with_index = with_index
        self.with_weights = with_weights

    @property
    def active(self):
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, batch):
        x, y, index, slot, real = batch
        if self.active:
            rng = np.random.default_rng([self.seed, int(slot[0]), 11])
            x, y, _, _ = mix_batch(x, y, rng, self.mixup_alpha, self.cutmix_alpha, self.prob,
                                   self.switch_prob)
        if self.with_index:
            return x, y, index
        return (x, y, real) if self.with_weights else (x, y)

    def output_kinds(self):
        """Names of the batch's parts, in order."""
        return ("x", "y") + (("index",) if self.with_index else ("weight",) if self.with_weights else ())


ENDLESS = 2**40  # stream length when `epochs` is None


class VideoLoader:
    """Batches of one dataset for one purpose (training or evaluation).

    - `for_fit(initial_epoch, initial_step)`: what `model.fit(..., steps_per_epoch=
      loader.steps_per_epoch, initial_epoch=...)` takes: one stream over epochs
      `initial_epoch..epochs` (endless when `epochs` is None), from batch
      `initial_step` of the first, each epoch a new order and new augmentations. A grain `IterDataset` or a `tf.data.Dataset`.
    - `build()`: one epoch as a dataset (e.g. `validation_data`).
    - iterating the loader: numpy batches of one epoch; at the end, a warning
      with the number of unreadable videos skipped.
    - `bad_videos()`: `[path, reason]` of every skip of this loader's videos
      so far, from all workers.
    - `close()` (or `with loader:`): stops every worker process and thread of
      the datasets it built (grain iterators are closed explicitly, not left
      to the garbage collector). Close a loader before starting the next.
    """

    def __init__(self, sampler, finisher, batch_size, epochs, drop_remainder, frontend, workers):
        self.sampler = sampler
        self.finisher = finisher
        self.batch_size = batch_size
        self.epochs = epochs
        self.drop_remainder = drop_remainder
        self.frontend = frontend  # "grain" or "tf" (tf.data)
        self.workers = workers
        n = sampler.shard_size(drop_remainder)
        self.steps_per_epoch = n // batch_size if drop_remainder else math.ceil(n / batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{n} videos are fewer than one batch of {batch_size}.")
        sampler.per_epoch = self.steps_per_epoch * batch_size if drop_remainder else n
        self._streams = []  # every grain iterator of the datasets built, to close

    def close(self):
        """Close every iterator of the datasets this loader built (worker
        processes joined, shared memory released). Idempotent."""
        workers = bool(self._streams) and self.workers > 0
        while self._streams:
            self._streams.pop().close()
        if workers:
            release_worker_batches()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __len__(self):
        return self.steps_per_epoch

    def build(self, initial_epoch=0, epochs=1, initial_step=0):
        """Epochs `initial_epoch..epochs` (endless if None) as one dataset,
        from batch `initial_step` of the first.

        A grain one's iterator closed (or dropped) after at most its first
        `REPLAYED_BATCHES` batches keeps its workers for the dataset's next
        iterator, which replays those batches and continues from it: Keras'
        grain adapter reads the first batches of a dataset given to `fit` or
        `evaluate` for their spec and drops that iterator, which would start
        (and stop) the workers twice and decode those batches twice. The
        workers stop at the latest with the loader's `close()`."""
        return self._dataset(initial_epoch, epochs, reuse_first=True, initial_step=initial_step)

    def _dataset(self, initial_epoch, epochs, reuse_first, initial_step=0):
        per_epoch = self.sampler.per_epoch
        if not 0 <= initial_step < self.steps_per_epoch:
            raise ValueError(f"initial_step={initial_step} is not a step of an epoch of "
                             f"{self.steps_per_epoch} steps.")
        start = initial_epoch * per_epoch + initial_step * self.batch_size
        stop = ENDLESS if epochs is None else epochs * per_epoch
        if stop <= start:
            raise ValueError(f"no epochs between initial_epoch={initial_epoch} and epochs={epochs}.")
        if self.frontend == "tf":
            return self._model_inputs(self._build_tf(start, stop))
        ds = self._model_inputs(self._build_grain(start, stop))
        return _closing_dataset(ds, self._streams, reuse_first)

    def _model_inputs(self, ds):
        """The batches as the model takes them (a subclass may map them)."""
        return ds

    def for_fit(self, initial_epoch=0, initial_step=0):
        """The training stream for `model.fit(..., steps_per_epoch=self.steps_per_epoch)`
        (from batch `initial_step` of `initial_epoch`: the batches an
        uninterrupted stream gives from there)."""
        return self.build(initial_epoch, self.epochs, initial_step)

    def _build_grain(self, start, stop):
        import grain

        ds = grain.MapDataset.range(start, stop).map(self.sampler)
        ds = ds.batch(self.batch_size, drop_remainder=self.drop_remainder).map(self.finisher)
        ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
        if self.workers > 0:
            from absl import flags

            if not flags.FLAGS.is_parsed():  # grain's workers read absl flags
                flags.FLAGS.mark_as_parsed()
            ds = ds.mp_prefetch(
                grain.multiprocessing.MultiprocessingOptions(num_workers=self.workers),
                worker_init_fn=init_worker,
            )
            release_at_exit()
        return ds

    def sample_shape(self):
        """The shape of one sample's `x`."""
        shape = (self.sampler.num_frames, self.sampler.image_size, self.sampler.image_size, 3)
        if not self.sampler.training and self.sampler.views != "single":
            shape = (num_views(self.sampler.views, self.sampler.num_clips),) + shape
        return shape

    def _build_tf(self, start, stop):
        from keras_har.utils.import_order import load_torch_before_tensorflow

        load_torch_before_tensorflow()
        import tensorflow as tf

        shape, classes = self.sample_shape(), self.sampler.num_classes
        sampler, finisher = self.sampler, self.finisher
        init_worker(0, max(1, self.workers))  # the parallel calls share this process

        def load(slot):
            return sampler(int(slot))

        def load_tf(slot):
            x, y, index, slot, real = tf.numpy_function(
                load, [slot], (tf.float32, tf.float32, tf.int64, tf.int64, tf.float32), stateful=False
            )
            return (tf.ensure_shape(x, shape), tf.ensure_shape(y, (classes,)),
                    tf.ensure_shape(index, ()), tf.ensure_shape(slot, ()), tf.ensure_shape(real, ()))

        ds = tf.data.Dataset.range(start, stop).map(
            load_tf, num_parallel_calls=max(1, self.workers), deterministic=True
        )
        ds = ds.batch(self.batch_size, drop_remainder=self.drop_remainder)
        batch = (self.batch_size if self.drop_remainder else None,)
        kinds = {"x": (tf.float32, batch + shape), "y": (tf.float32, batch + (classes,)),
                 "index": (tf.int64, batch), "weight": (tf.float32, batch)}
        out_types, out_shapes = zip(*(kinds[k] for k in finisher.output_kinds()))

        def finish(*batch_arrays):
            return finisher(batch_arrays)

        def finish_tf(x, y, index, slot, real):
            outs = tf.numpy_function(finish, [x, y, index, slot, real], out_types, stateful=False)
            return tuple(tf.ensure_shape(t, s) for t, s in zip(outs, out_shapes))

        return ds.map(finish_tf).prefetch(2)

    def __iter__(self):
        """Numpy batches of one epoch (the first: use `build` for others); the
        epoch's iterator is closed when the loop ends or is left."""
        from keras_har.utils import interrupts

        seen = len(self.bad_videos())
        ds = self._dataset(0, 1, reuse_first=False)
        with interrupts.deferred():  # a SIGINT / SIGTERM stops the loop between two batches
            if self.frontend == "tf":
                for batch in ds.as_numpy_iterator():
                    interrupts.check()
                    yield batch
            else:
                iterator = iter(ds)
                try:
                    for batch in iterator:
                        interrupts.check()
                        yield tuple(np.asarray(a) for a in batch)
                finally:
                    iterator.close()
        warn_skipped(self.bad_videos()[seen:], "this epoch")

    def bad_videos(self):
        """`[path, reason]` for every unreadable video of this loader's
        dataset met so far (all workers; the log may be shared with others)."""
        if not self.sampler.bad_log:
            return []
        own = self.sampler.paths
        return [entry for entry in self.sampler.bad_log.entries() if entry[0] in own]


REPLAYED_BATCHES = 2  # what Keras' data adapters read for a dataset's spec
NO_ITERATOR_STATE = ("keras-har loaders resume by position (build(initial_epoch, initial_step=...)), "
                     "not from a grain iterator state.")


class _Stream:
    """One grain iterator (and its workers) with the batches it gave first."""

    def __init__(self, iterator, record=True):
        self.iterator = iterator
        # Its first REPLAYED_BATCHES batches; None once past them (or not recorded).
        self.first = [] if record else None
        self.exhausted = False

    def close(self):
        """Stop the workers; drop the recorded batches (shared memory)."""
        self.first = None
        close = getattr(self.iterator, "close", None)
        if close is not None:
            close()


class _StreamIterator:
    """Reads a `_Stream` from its start: the recorded first batches, then the
    stream's iterator (only one `_StreamIterator` reads a stream at a time)."""

    def __init__(self, stream, park):
        self._stream = stream
        self._park = park  # called with the stream when this closes early; None: close it
        self._position = 0
        self._closed = False

    def __iter__(self):
        return self

    def __next__(self):
        stream = self._stream
        if self._closed:
            raise ValueError("this iterator is closed.")
        if stream.first is not None and self._position < len(stream.first):
            batch = stream.first[self._position]
        elif stream.exhausted:
            raise StopIteration
        else:
            try:
                with without_main_script():  # the first next() starts grain's workers
                    batch = next(stream.iterator)
            except StopIteration:
                stream.exhausted = True
                raise
            except BaseException:
                stream.first = None  # broken: never handed on
                raise
            if stream.first is not None:
                if len(stream.first) < REPLAYED_BATCHES:
                    stream.first.append(batch)
                else:
                    stream.first = None  # past the replayable start: this reader's alone
        self._position += 1
        return batch

    def close(self):
        if self._closed:
            return
        self._closed = True
        stream = self._stream
        if self._park is not None and stream.first is not None and not stream.exhausted:
            self._park(stream)
        else:
            stream.close()


def _closing_dataset(ds, registry, reuse_first=True):
    """`ds` as a grain `IterDataset` whose iterators' `_Stream`s are recorded
    in `registry` (so the loader can close them); with `reuse_first`, an
    iterator closed within its first batches is parked for the next (see
    `VideoLoader.build`)."""
    import grain

    class StreamDatasetIterator(grain.DatasetIterator):
        def __init__(self, reader):
            super().__init__()
            self._reader = reader

        def __next__(self):
            return next(self._reader)

        def get_state(self):
            raise NotImplementedError(NO_ITERATOR_STATE)

        def set_state(self, state):
            raise NotImplementedError(NO_ITERATOR_STATE)

        def close(self):  # also grain's __del__
            self._reader.close()

    class ClosingIterDataset(grain.IterDataset):
        def __init__(self, parent):
            super().__init__(parent)
            self._lock = threading.Lock()
            self._parked = None  # a stream closed early, for the next iterator

        def _park(self, stream):
            with self._lock:
                if self._parked is None:
                    self._parked = stream
                    return
            stream.close()  # one spare is enough

        def __iter__(self):
            with self._lock:
                stream, self._parked = self._parked, None
            if stream is None:
                stream = _Stream(self._parent.__iter__(), record=reuse_first)
                registry.append(stream)
            return StreamDatasetIterator(_StreamIterator(stream, self._park if reuse_first else None))

        def __str__(self):
            return "ClosingIterDataset"

    return ClosingIterDataset(ds)

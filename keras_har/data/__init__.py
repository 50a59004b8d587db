"""Video data: dataset indexes, decoding, clip-consistent transforms, Mixup,
grain / tf.data loaders and a synthetic dataset.

This package imports no Keras or backend: loader worker processes stay light.
"""

from keras_har.data.decoding import (
    VideoReadError,
    iter_frames,
    probe,
    read_clip,
    read_frames,
    eval_indices,
    train_indices,
)
from keras_har.data.mixing import mix_batch, one_hot
from keras_har.data.dataset_flags import DATASETS, dataset_index, train_and_test
from keras_har.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from keras_har.data.loaders import make_loader
from keras_har.data.pipeline import VideoLoader, eval_views, load_video_views
from keras_har.data.views import OFFICIAL_CLIPS, loader_views, num_views
from keras_har.data.splits import (
    HMDB51,
    UCF101,
    DatasetIndexError,
    VideoCSV,
    VideoDataset,
    VideoFolder,
    load_label_map,
)
from keras_har.data.synthetic_videos import (
    REVERSAL_PAIRS,
    SyntheticVideos,
    ensure_synthetic_dataset,
    make_synthetic_dataset,
    reversal_pair_accuracy,
)
from keras_har.data.masking import MaskGenerator
from keras_har.data.subsets import stratified_subset
from keras_har.data.unlabelled import UnlabelledVideos

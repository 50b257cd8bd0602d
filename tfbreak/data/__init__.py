"""tf.data pipelines for the data sets of Jastrzebski et al. (ICLR 2020), appendix D.

``load_dataset(name)`` returns a :class:`DataBundle` of preprocessed, unbatched examples;
``train_batches`` makes one epoch's shuffled, augmented batches reproducibly from
``(seed, epoch)``; ``fixed_subset`` materialises the fixed samples the measurements use.
"""

from __future__ import annotations

from tfbreak.data.common import (
    DataBundle,
    DatasetUnavailableError,
    evaluation_batches,
    fixed_subset,
    train_batches,
)
from tfbreak.data.mnli import BertPairTokenizer
from tfbreak.data.registry import DATASET_NAMES, load_dataset

__all__ = [
    "DATASET_NAMES",
    "BertPairTokenizer",
    "DataBundle",
    "DatasetUnavailableError",
    "evaluation_batches",
    "fixed_subset",
    "load_dataset",
    "train_batches",
]

"""Data-set registry: ``load_dataset(name, ...)`` for the settings of appendix D."""

from __future__ import annotations

from collections.abc import Callable

from tfbreak.catalog import DATASET_NAMES, canonical_dataset
from tfbreak.data.cifar10 import load_cifar10
from tfbreak.data.common import DataBundle
from tfbreak.data.fashion_mnist import load_fashion_mnist
from tfbreak.data.imagenet import load_imagenet
from tfbreak.data.imdb import load_imdb
from tfbreak.data.mnli import load_mnli

_LOADERS: dict[str, Callable[..., DataBundle]] = {
    "cifar10": load_cifar10,
    "imdb_reviews": load_imdb,
    "glue/mnli": load_mnli,
    "imagenet2012": load_imagenet,
    "fashion_mnist": load_fashion_mnist,
}


def load_dataset(
    name: str, *, data_dir: str | None = None, download: bool = False, **options
) -> DataBundle:
    """Load data set ``name`` (one of :data:`tfbreak.catalog.DATASET_NAMES`, or an alias) as a
    :class:`DataBundle`.

    Never downloads unless ``download=True``; an unprepared data set raises
    :class:`~tfbreak.data.common.DatasetUnavailableError` with the command that prepares it.
    ``options`` go to the loader (e.g. ``vocab_path``/``bert_handle`` for glue/mnli,
    ``manual_dir``/``image_size`` for imagenet2012, ``fashion_mnist_dir``/``source`` for
    fashion_mnist, ``vocab_size``/``sequence_length`` for imdb_reviews).
    """
    key = canonical_dataset(name)
    if key not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if name == "multi_nli":
        options.setdefault("tfds_name", "multi_nli")
    return _LOADERS[key](data_dir=data_dir, download=download, **options)

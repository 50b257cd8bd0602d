"""Data-set registry: ``load_dataset(name, ...)`` for the data sets of
`tfbreak.catalog.DATASETS` (appendix D), each declared once there."""

from __future__ import annotations

from tfbreak.catalog import DATASET_NAMES, DATASETS, canonical_dataset
from tfbreak.data.common import DataBundle


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
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if name == "multi_nli":  # the alias names the other tfds copy of MNLI
        options.setdefault("tfds_name", "multi_nli")
    return DATASETS[key].load_function()(data_dir=data_dir, download=download, **options)

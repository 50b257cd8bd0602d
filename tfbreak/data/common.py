"""Shared data-set machinery: :class:`DataBundle`, deterministic batching, fixed subsets, tfds.

Determinism (needed to resume a run and to measure on fixed samples, appendix C/D): the training
order of an epoch is a function of ``(seed, epoch)`` only, and the augmentation of an example is a
function of ``(seed, epoch, example index)`` only, computed with stateless random ops.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfbreak import extras
from tfbreak.preflight import tfds_dir

AugmentFn = Callable[[Any, tf.Tensor], Any]
LookupFn = Callable[[tf.Tensor], tuple[Any, tf.Tensor]]


class DatasetUnavailableError(ValueError):
    """A data set is not prepared locally (tfds was not allowed to download it)."""


class NetworkUnreachableError(ConnectionError):
    """--download, but the host a data set comes from cannot be reached (an OSError whose
    errno is ENETUNREACH and whose filename is ``host:port``)."""


@dataclasses.dataclass
class DataBundle:
    """A data set ready for training and measurement.

    ``train``/``test`` yield preprocessed, un-augmented, unbatched ``(x, y)`` with ``y`` an int32
    label. ``augment(x, seed)`` (stateless, ``seed`` shape [2]) is applied by
    :func:`train_batches` to training data only. ``source`` says where the data came from.
    ``train_lookup(i)`` (optional) returns the i-th training example in O(1) (in-memory data),
    which makes full deterministic shuffles cheap; without it :func:`train_batches` uses a
    seeded shuffle buffer of ``shuffle_buffer`` examples.
    """

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    num_train: int
    num_test: int
    num_classes: int
    input_shape: tuple[int, ...]
    augment: AugmentFn | None
    source: str
    train_lookup: LookupFn | None = None
    shuffle_buffer: int | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def _epoch_seed(seed: int, epoch: int) -> tf.Tensor:
    return tf.constant([int(seed), int(epoch)], dtype=tf.int64)


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> tf.Tensor:
    """The order (int64 indices) in which epoch ``epoch`` visits the training set."""
    keys = tf.random.stateless_uniform(
        [num_examples], seed=_epoch_seed(seed, epoch), minval=None, maxval=None, dtype=tf.int64
    )
    return tf.cast(tf.argsort(keys, stable=True), tf.int64)


def example_seed(seed: int, epoch: int, index: tf.Tensor) -> tf.Tensor:
    """Stateless seed (shape [2]) for augmenting example ``index`` in epoch ``epoch``."""
    return tf.random.experimental.stateless_fold_in(
        _epoch_seed(seed, epoch), tf.cast(index, tf.int64)
    )


def train_batches(
    bundle: DataBundle,
    batch_size: int,
    seed: int,
    epoch: int,
    drop_remainder: bool = True,
    *,
    start_batch: int = 0,
) -> tf.data.Dataset:
    """Shuffled, augmented training batches of one epoch, reproducible from ``(seed, epoch)``.

    ``start_batch`` skips the first batches of the epoch (to resume a run); the remaining
    batches are identical to those of an uninterrupted call.
    """
    n = bundle.num_train
    start = int(start_batch) * int(batch_size)
    if bundle.train_lookup is not None:
        order = epoch_permutation(n, seed, epoch)[start:]
        lookup = bundle.train_lookup
        ds = tf.data.Dataset.from_tensor_slices(order).map(
            lambda i: (i, *lookup(i)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    else:
        buffer = min(n, bundle.shuffle_buffer or n)
        shuffle_seed = int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])

        def flatten(index, example):
            return (index, *example)

        ds = (
            bundle.train.enumerate()
            .map(flatten)
            .shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=False)
            .skip(start)
        )
    augment = bundle.augment
    if augment is not None:

        def _augment(i, x, y):
            return augment(x, example_seed(seed, epoch, i)), y

        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:

        def drop_index(_, x, y):
            return x, y

        ds = ds.map(drop_index)
    options = tf.data.Options()
    options.deterministic = True
    return (
        ds.batch(batch_size, drop_remainder=drop_remainder)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )


def _cardinality(dataset: tf.data.Dataset) -> int:
    n = int(dataset.cardinality())
    if n >= 0:
        return n
    return int(dataset.reduce(np.int64(0), lambda c, _: c + 1))


def fixed_subset(
    dataset: tf.data.Dataset, size: int, seed: int, *, lookup: LookupFn | None = None
) -> tuple[Any, tf.Tensor]:
    """``size`` examples of an unbatched ``dataset`` as in-memory ``(x, y)`` tensors.

    The same ``seed`` gives the same examples (in data-set order). Used for the Hessian sample
    (default 5% of the training set, appendix C), the mini-batches of K and the probe batch.
    With the data set's O(1) ``lookup`` (in-memory data) the examples are gathered directly
    (the same examples, the same values); otherwise the data set is scanned once.
    """
    n = _cardinality(dataset)
    if not 0 < size <= n:
        raise ValueError(f"subset size {size} must be in [1, {n}]")
    chosen = tf.sort(epoch_permutation(n, seed, -1)[:size])
    if lookup is not None:
        return lookup(chosen)
    mask = tf.scatter_nd(chosen[:, None], tf.ones([size], tf.bool), [n])

    def keep(index, _):
        return mask[index]

    def drop_index(_, example):
        return example

    subset = dataset.enumerate().filter(keep).map(drop_index)
    return next(iter(subset.batch(size)))


def evaluation_batches(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Batches of ``dataset`` in order, the last one possibly smaller (no augmentation)."""
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def in_memory_dataset(
    arrays: tuple[Any, ...], preprocess: Callable[..., Any] | None = None
) -> tuple[tf.data.Dataset, LookupFn]:
    """A dataset over in-memory arrays ``(x, y)`` and its O(1) ``lookup(i)``."""
    tensors = tf.nest.map_structure(tf.convert_to_tensor, arrays)

    def lookup(i):
        x, y = tf.nest.map_structure(lambda t: tf.gather(t, i), tensors)
        return (preprocess(x), y) if preprocess is not None else (x, y)

    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if preprocess is not None:
        ds = ds.map(lambda x, y: (preprocess(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds, lookup


def in_memory_bundle(
    name: str,
    arrays: dict[str, tuple[Any, ...]],
    *,
    num_classes: int,
    source: str,
    preprocess: Callable[..., Any] | None = None,
    augment: AugmentFn | None = None,
    metadata: dict[str, Any] | None = None,
) -> DataBundle:
    """A DataBundle over in-memory ``{"train": (x, y), "test": (x, y)}`` arrays, with O(1)
    ``train_lookup``; ``input_shape`` is that of one (preprocessed) example."""
    train, lookup = in_memory_dataset(arrays["train"], preprocess)
    test, _ = in_memory_dataset(arrays["test"], preprocess)
    return DataBundle(
        name=name,
        train=train,
        test=test,
        num_train=len(arrays["train"][1]),
        num_test=len(arrays["test"][1]),
        num_classes=num_classes,
        input_shape=tuple(train.element_spec[0].shape),
        augment=augment,
        source=source,
        train_lookup=lookup,
        metadata=metadata or {},
    )


# ----------------------------------------------------------------------------- tfds helpers


def tfds_prepare_hint(name: str, data_dir: str | None, extra: str = "") -> str:
    where = f" --data_dir={data_dir}" if data_dir else ""
    return (
        f"prepare it with `tfds build {name}{where}{extra}` (needs network), or call "
        f"load_dataset(..., download=True) / pass the --download flag"
    )


def check_network(url: str, timeout: float = 10.0) -> None:
    """Raise NetworkUnreachableError unless a TCP connection to `url`'s host (or to the proxy
    the environment names for it) opens within `timeout` seconds: tensorflow-datasets retries an
    unreachable host for minutes."""
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(url).scheme)
    target = urllib.parse.urlsplit(proxy or url)
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise NetworkUnreachableError(
            errno.ENETUNREACH, f"{os.strerror(errno.ENETUNREACH)} ({err})", f"{host}:{port}"
        ) from err


def _created(root: Path, before: set[Path] | None) -> list[Path]:
    """What appeared in `root` (to depth 2) since `before` (None: `root` did not exist)."""
    if before is None:
        return [root] if root.exists() else []
    new = sorted(_snapshot(root) - before)
    return [p for p in new if p.parent not in new]  # a new directory goes with its contents


def _snapshot(root: Path) -> set[Path] | None:
    """The entries of `root` to depth 2 (None when it is not a directory)."""
    if not root.is_dir():
        return None
    return set(root.glob("*")) | set(root.glob("*/*"))


def load_tfds_splits(
    name: str,
    splits: tuple[str, ...],
    *,
    data_dir: str | None,
    download: bool,
    download_config: Any = None,
    hint_extra: str = "",
) -> dict[str, tf.data.Dataset]:
    """Open splits of a tfds data set without ever downloading unless ``download``.

    Raises :class:`DatasetUnavailableError` (fast, no network) when it is not prepared, or
    when tensorflow-datasets is not installed (naming the extra that installs it). With
    ``download``, a host that cannot be reached is a NetworkUnreachableError within seconds, and
    a download that fails or is interrupted leaves nothing of its own in the data directory.
    """
    if extras.missing("data", ("tensorflow_datasets",)):
        raise DatasetUnavailableError(
            f"data set {name!r} is read through tensorflow-datasets, which is not installed: "
            f"{extras.install_hint('data')}"
        )
    import tensorflow_datasets as tfds

    root = tfds_dir(data_dir)
    before = _snapshot(root)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if download and not builder.is_prepared():
            try:
                check_network(builder.info.homepage)
                builder.download_and_prepare(download_config=download_config)
            except BaseException:
                for path in _created(root, before):
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
                raise
        read_config = tfds.ReadConfig(interleave_cycle_length=1, shuffle_seed=0)
        return {
            split: builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
            for split in splits
        }
    except (DatasetUnavailableError, NetworkUnreachableError):
        raise
    except Exception as err:  # tfds raises AssertionError, DatasetNotFoundError, ...
        raise DatasetUnavailableError(
            f"data set {name!r} is not available in "
            f"{data_dir or '~/tensorflow_datasets (default)'}: "
            f"{tfds_prepare_hint(name, data_dir, hint_extra)}. ({type(err).__name__}: {err})"
        ) from err


def materialise(dataset: tf.data.Dataset, batch_size: int = 4096) -> Any:
    """Read a (small) unbatched dataset into NumPy arrays (a structure like its elements)."""
    chunks = [
        tf.nest.map_structure(np.asarray, b) for b in dataset.batch(batch_size).as_numpy_iterator()
    ]
    if not chunks:
        raise DatasetUnavailableError("data set split is empty")
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *chunks)

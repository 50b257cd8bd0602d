"""Fashion-MNIST (appendix E: MLP 300-100), scaled to [0, 1], shape 28x28x1, no augmentation.

Sources: a prepared tfds copy (``fashion_mnist``) if there is one, else the IDX files shipped by
Debian (``/usr/share/datasets/fashion-mnist``, overridable with the ``fashion_mnist_dir`` option or
the ``TFBREAK_FASHION_MNIST_DIR`` environment variable), read with NumPy: works offline.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow as tf

from tfbreak.data.common import (
    DataBundle,
    DatasetUnavailableError,
    in_memory_bundle,
    load_tfds_splits,
    materialise,
)

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "TFBREAK_FASHION_MNIST_DIR"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a NumPy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def idx_directory(option: str | None = None) -> str:
    """Directory holding the Fashion-MNIST IDX files (option > env var > Debian path)."""
    return option or os.environ.get(ENV_VAR) or DEBIAN_DIR


def _scale(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32) / 255.0


def _bundle(arrays: dict, source: str) -> DataBundle:
    return in_memory_bundle(
        "fashion_mnist", arrays, num_classes=10, source=source, preprocess=_scale
    )


def load_idx_arrays(directory: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images uint8 [N,28,28,1], labels int32), "test": ...}`` from IDX files."""
    arrays = {}
    for split, (images, labels) in FILES.items():
        paths = [os.path.join(directory, name) for name in (images, labels)]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise DatasetUnavailableError(
                f"Fashion-MNIST IDX files missing: {', '.join(missing)} (install Debian's "
                f"fashion-mnist data package or set {ENV_VAR})"
            )
        x = read_idx(paths[0])[..., None]
        y = read_idx(paths[1]).astype(np.int32)
        arrays[split] = (x, y)
    return arrays


def load_fashion_mnist(
    *,
    data_dir: str | None = None,
    download: bool = False,
    source: str = "auto",
    fashion_mnist_dir: str | None = None,
) -> DataBundle:
    """Fashion-MNIST; ``source`` is "auto" (tfds, else IDX files), "tfds" or "idx" (= "debian")."""
    if source not in ("auto", "tfds", "idx", "debian"):
        raise ValueError(f"source must be 'auto', 'tfds' or 'idx'/'debian', not {source!r}")
    tfds_error = None
    if source in ("auto", "tfds"):
        try:
            splits = load_tfds_splits(
                "fashion_mnist", ("train", "test"), data_dir=data_dir, download=download
            )
            arrays = {
                split: materialise(ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32))))
                for split, ds in splits.items()
            }
            return _bundle(arrays, "tfds:fashion_mnist")
        except DatasetUnavailableError as err:
            if source == "tfds":
                raise
            tfds_error = err
    directory = idx_directory(fashion_mnist_dir)
    try:
        arrays = load_idx_arrays(directory)
    except DatasetUnavailableError as err:
        raise DatasetUnavailableError(f"{err}; and {tfds_error}" if tfds_error else str(err)) from (
            tfds_error or err
        )
    prefix = "debian" if os.path.abspath(directory) == DEBIAN_DIR else "idx"
    return _bundle(arrays, f"{prefix}:{os.path.abspath(directory)}")

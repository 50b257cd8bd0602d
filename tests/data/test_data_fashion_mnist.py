"""Real Fashion-MNIST from Debian's IDX files (no network): counts, labels, pixel statistics."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tfbreak.data import load_dataset
from tfbreak.data.fashion_mnist import FILES, idx_directory

DIRECTORY = idx_directory()
pytestmark = pytest.mark.skipif(
    not all(os.path.exists(os.path.join(DIRECTORY, f)) for pair in FILES.values() for f in pair),
    reason=f"Fashion-MNIST IDX files not found in {DIRECTORY} (Debian package or "
    "TFBREAK_FASHION_MNIST_DIR)",
)


def test_fashion_mnist_from_idx_files(tmp_path):
    bundle = load_dataset("fashion_mnist", data_dir=str(tmp_path))  # no tfds copy there
    assert bundle.source.endswith(os.path.abspath(DIRECTORY))
    assert bundle.source.split(":")[0] in ("debian", "idx")
    assert (bundle.num_train, bundle.num_test, bundle.num_classes) == (60000, 10000, 10)
    assert bundle.input_shape == (28, 28, 1)
    x, y = bundle.train_lookup(0)
    assert x.shape == (28, 28, 1) and str(x.dtype) == "<dtype: 'float32'>"
    for split in (bundle.test, bundle.train):  # the train split's images stay in xs
        xs, ys = (t.numpy() for t in next(iter(split.batch(60000))))
        assert set(np.unique(ys)) == set(range(10))
        assert xs.min() == 0.0 and xs.max() == 1.0
    xs = xs.astype(np.float64)
    assert round(xs.mean(), 3) == 0.286
    assert round(xs.std(), 3) == 0.353

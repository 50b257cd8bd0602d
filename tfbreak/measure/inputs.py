"""The training examples a user hands over, in the forms `model.fit` takes, as the measurement
needs them: an unbatched tf.data.Dataset of (x, y), its size and, for in-memory arrays, an O(1)
lookup that gathers examples by index (fresh samples without scanning the data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from tfbreak.data.common import in_memory_dataset


@dataclass(frozen=True)
class Examples:
    """Unbatched (x, y) examples: `dataset`, its `size`, and `lookup` (None: scan to sample)."""

    dataset: tf.data.Dataset
    size: int
    lookup: Callable | None = None


def _count(dataset: tf.data.Dataset) -> int:
    n = int(dataset.cardinality())
    if n >= 0:
        return n
    return int(dataset.reduce(np.int64(0), lambda c, _: c + 1))


def _is_batched(dataset: tf.data.Dataset, example_rank: int | None) -> bool:
    """A dataset of batches: its features have one axis more than one example (when the model's
    input rank is known), else a leading axis of unknown size (`Dataset.batch`)."""
    spec = tf.nest.flatten(dataset.element_spec)[0]
    if example_rank is not None:
        return spec.shape.rank == example_rank + 1
    return spec.shape.rank is not None and spec.shape.rank >= 1 and spec.shape[0] is None


def as_examples(data: Any, *, name: str = "data", example_rank: int | None = None) -> Examples:
    """`(x, y)` arrays or tensors, or a tf.data.Dataset of (x, y) examples or batches (what
    `model.fit` takes) as `Examples`. `example_rank`: the rank of one example's x (the model's
    input rank without the batch axis), which tells a batched dataset from an unbatched one."""
    if isinstance(data, tf.data.Dataset):
        dataset = data.unbatch() if _is_batched(data, example_rank) else data
        if not isinstance(dataset.element_spec, tuple) or len(dataset.element_spec) != 2:
            raise ValueError(f"{name}: expected a dataset of (x, y) pairs, got {data.element_spec}")
        return Examples(dataset, _count(dataset))
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = (tf.nest.map_structure(np.asarray, part) for part in data)
        n = len(np.asarray(y))
        if any(np.shape(leaf)[0] != n for leaf in tf.nest.flatten(x)):
            raise ValueError(f"{name}: x and y must have the same number of examples")
        dataset, lookup = in_memory_dataset((x, y))
        return Examples(dataset, n, lookup)
    raise TypeError(
        f"{name}: expected (x, y) arrays or a tf.data.Dataset of (x, y), got {type(data).__name__}"
    )

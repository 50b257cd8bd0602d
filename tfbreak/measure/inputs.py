"""The training examples a user hands over, in the forms `model.fit` takes, as the measurement
needs them: the measurement pool (`tfbreak.measure.pool`) as an unbatched tf.data.Dataset with
an O(1) lookup that gathers examples by index, and N, the examples in one pass of the data.

Forms: `(x, y)` arrays or tensors (x may be a dict or list of inputs); a tf.data.Dataset of
(x, y) examples or batches (shuffled, repeated, prefetched, cached, mapped: the pool does not
depend on the order it yields them in; its shuffles are not drawn from, see
`tfbreak.data.shuffles`); a Python generator or iterator of (x, y) batches; a
`keras.utils.PyDataset`. A dataset whose size cannot be known without end (`repeat()`), and a
generator, need `num_examples`: the examples in one pass, read from the start of the stream.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from tfbreak.data.common import in_memory_dataset
from tfbreak.data.shuffles import Pass, one_pass
from tfbreak.measure.pool import (
    Pool,
    capacity,
    example_bytes,
    pool_of_arrays,
    pool_of_batches,
)

_READ_BATCH = 1024  # examples per batch when reading an unbatched dataset


@dataclass(frozen=True)
class Examples:
    """The pool of the user's examples: `dataset` (unbatched (x, y)), `lookup` (O(1) gather by
    index), `size` N (the examples in one pass of the data; more than the pool holds when the
    data exceeds its capacity), `pool` and its `capacity`."""

    dataset: tf.data.Dataset
    size: int
    lookup: Callable
    pool: Pool
    capacity: int

    @property
    def pool_size(self) -> int:
        """The examples the samples are drawn from."""
        return self.pool.size


def example_rank(model: Any) -> int | None:
    """The rank of one example's (first) input of `model`, without the batch axis: what tells a
    dataset of batches from one of examples (None when the model does not say, e.g. a
    subclassed model that was never called on symbolic inputs)."""
    for structure in ("input", "inputs"):  # a Sequential model has only `inputs`
        try:
            first = tf.nest.flatten(getattr(model, structure))[0]
        except (AttributeError, ValueError, IndexError, TypeError):
            continue
        if getattr(first, "shape", None) is not None:
            return len(first.shape) - 1
    return None


def _is_batched(dataset: tf.data.Dataset, example_rank: int | None) -> bool:
    """A dataset of batches: its (first) feature has one axis more than one example (when the
    model's input rank is known: inputs and features are both flattened with dict keys sorted),
    else a leading axis of unknown size (`Dataset.batch`)."""
    spec = tf.nest.flatten(dataset.element_spec)[0]
    if example_rank is not None:
        return spec.shape.rank == example_rank + 1
    return spec.shape.rank is not None and spec.shape.rank >= 1 and spec.shape[0] is None


def _pair(element: Any, name: str) -> tuple[Any, Any]:
    """(x, y) of a dataset or generator element; a one-line error for anything else (sample
    weights included: the measured loss is unweighted)."""
    if isinstance(element, tuple | list) and len(element) == 3:
        raise ValueError(
            f"{name}: yields (x, y, sample_weight); tfbreak measures the unweighted mean loss, "
            "so sample weights would be dropped: pass the data as (x, y), or loss_fn=<the "
            "weighted per-example losses>"
        )
    if not isinstance(element, tuple | list) or len(element) != 2:
        raise ValueError(f"{name}: expected (x, y) pairs, got {type(element).__name__}")
    return element[0], element[1]


def _numpy_pairs(batches: Iterable[Any], name: str) -> Iterator[tuple[Any, Any]]:
    for element in batches:
        x, y = _pair(element, name)
        yield tf.nest.map_structure(np.asarray, (x, y))


def _first(batches: Iterable[Any], count: int | None, name: str, cut: list) -> Iterator[Any]:
    """The batches holding the first `count` examples (all when None); the last one is cut if
    it holds more (then `cut` gets an entry); a one-line error when the stream ends before."""
    if count is None:
        yield from batches
        return
    left = count
    for batch in batches:
        n = len(tf.nest.flatten(batch)[0])
        if n > left:
            cut.append(n - left)
            batch = tf.nest.map_structure(lambda a, k=left: a[:k], batch)
        yield batch
        left -= min(n, left)
        if left == 0:
            return
    raise ValueError(
        f"num_examples: {name} ended after {count - left} examples, fewer than num_examples={count}"
    )


def _dataset_batches(
    data: tf.data.Dataset, name: str, example_rank: int | None, num_examples: int | None
) -> tuple[Iterable[Any], Any, Pass]:
    """The numpy batches of one pass of a dataset (read below its shuffles, batching and
    repeats: `tfbreak.data.shuffles.one_pass`), its per-example spec, the pass."""
    if isinstance(data.element_spec, tuple) and len(data.element_spec) == 3:
        _pair(data.element_spec, name)  # sample weights: refused
    if not isinstance(data.element_spec, tuple) or len(data.element_spec) != 2:
        raise ValueError(f"{name}: expected a dataset of (x, y) pairs, got {data.element_spec}")
    one = one_pass(data)
    readable = one.dataset
    if int(readable.cardinality()) == tf.data.INFINITE_CARDINALITY and num_examples is None:
        raise ValueError(
            f"num_examples: {name} is infinite (repeat()); pass num_examples=<the examples in "
            "one pass of it>, which the measurement pool reads from the start of the stream"
        )
    spec = readable.element_spec
    if _is_batched(readable, example_rank):
        spec = tf.nest.map_structure(lambda s: tf.TensorSpec(s.shape[1:], s.dtype), spec)
    elif example_bytes(spec) is not None:  # examples of fixed shapes: read in batches
        readable = readable.batch(_READ_BATCH)
    else:
        readable = readable.map(lambda *e: tf.nest.map_structure(lambda t: t[None], e))
    return _numpy_pairs(readable.as_numpy_iterator(), name), spec, one


def _peeked(batches: Iterator[Any]) -> tuple[Any, Iterator[Any]]:
    first = next(batches, None)
    return first, (batches if first is None else itertools.chain([first], batches))


def as_examples(
    data: Any,
    *,
    name: str = "data",
    example_rank: int | None = None,
    seed: int = 0,
    pool_size: int | None = None,
    num_examples: int | None = None,
) -> Examples:
    """The pool of `data` (see the module doc) as `Examples`.

    Args:
      data: `(x, y)` arrays or tensors, a tf.data.Dataset of (x, y) examples or batches, a
        Python generator/iterator of (x, y) batches, or a `keras.utils.PyDataset`.
      name: the argument's name in error messages.
      example_rank: the rank of one example's x (the model's input rank without the batch
        axis), which tells a batched dataset from an unbatched one.
      seed: the seed of the examples' digests (the pool's membership and order).
      pool_size: the pool's capacity (default: `pool.DEFAULT_POOL_EXAMPLES` and at most
        `pool.DEFAULT_POOL_BYTES`).
      num_examples: the examples in one pass of `data`, read from its start; needed for an
        infinite dataset and for a generator.
    """
    if num_examples is not None and (not isinstance(num_examples, int) or num_examples < 1):
        raise ValueError(f"num_examples: must be a positive integer, got {num_examples!r}")
    if isinstance(data, tuple | list) and len(data) == 2:
        return _of_arrays(data, name, seed, pool_size, num_examples)
    one = None
    if isinstance(data, tf.data.Dataset):
        batches, spec, one = _dataset_batches(data, name, example_rank, num_examples)
        keep = capacity(pool_size, example_bytes(spec))
    elif _is_stream(data):
        if num_examples is None and not hasattr(data, "__len__"):
            raise ValueError(
                f"num_examples: {name} is a Python generator, whose size cannot be known; "
                "pass num_examples=<the examples in one pass of it>, read from its start (pass "
                "a generator of its own, not the one model.fit consumes)"
            )
        stream = (data[i] for i in range(len(data))) if _is_sequence(data) else iter(data)
        first, rest = _peeked(_numpy_pairs(stream, name))
        if first is None:
            raise ValueError(f"{name}: holds no examples")
        batches = rest
        keep = capacity(pool_size, sum(a[0].nbytes for a in tf.nest.flatten(first)))
    else:
        raise TypeError(
            f"{name}: expected (x, y) arrays, a tf.data.Dataset of (x, y), a generator of (x, y) "
            f"batches or a keras.utils.PyDataset, got {type(data).__name__}"
        )
    cut: list[int] = []  # a batch straddling the end of the pass: no whole batches per pass
    pool = pool_of_batches(_first(batches, num_examples, name, cut), seed, keep, name=name)
    if one is not None:  # a dataset's pass: its batches are the pipeline's, not those read
        pool = dataclasses.replace(pool, batches_per_pass=one.batches(pool.num_examples))
    elif cut:
        pool = dataclasses.replace(pool, batches_per_pass=None)
    return _as_examples(pool, keep)


def _is_sequence(data: Any) -> bool:
    """A `keras.utils.PyDataset` (or Sequence): batches by index, `len` of them."""
    return (
        hasattr(data, "__getitem__") and hasattr(data, "__len__") and hasattr(data, "on_epoch_end")
    )


def _is_stream(data: Any) -> bool:
    """A generator, an iterator or a PyDataset (not arrays, not a dataset)."""
    return _is_sequence(data) or isinstance(data, Iterator)


def _of_arrays(data, name: str, seed: int, pool_size: int | None, num_examples: int | None):
    x, y = (tf.nest.map_structure(np.asarray, part) for part in data)
    n = len(np.asarray(y))
    if any(np.shape(leaf)[0] != n for leaf in tf.nest.flatten(x)):
        raise ValueError(f"{name}: x and y must have the same number of examples")
    if num_examples is not None and num_examples != n:
        raise ValueError(
            f"num_examples: {name} holds {n} examples, not num_examples={num_examples}"
        )
    if n == 0:
        raise ValueError(f"{name}: holds no examples")
    per_example = sum(np.asarray(a)[0].nbytes for a in tf.nest.flatten((x, y)))
    keep = capacity(pool_size, per_example)
    return _as_examples(pool_of_arrays((x, y), seed, keep), keep)


def _as_examples(pool: Pool, keep: int) -> Examples:
    dataset, lookup = in_memory_dataset(pool.examples)
    return Examples(dataset, pool.num_examples, lookup, pool, keep)

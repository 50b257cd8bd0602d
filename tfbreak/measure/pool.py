"""The measurement pool: the training examples a run's samples are drawn from (the Hessian
sample, K's mini-batches, the probe batch; paper App. C), fixed whatever order the user's data
comes in.

A pipeline may yield its examples in a new order at every pass (`shuffle` reshuffles by
default), through prefetching, caching and parallel maps, or from a Python generator that can be
read once. The pool takes the examples once, in one pass, and keeps them in an order that
depends on their content only: example i gets the 64-bit digest h_i = BLAKE2b(seed, content_i)
(every feature and label, as float64 values, or as bytes for strings), and the pool holds the
`capacity` examples of smallest digest, sorted by digest. Which examples it holds and their
order are therefore the same for any order of the pass, for the arrays the pipeline was built
from, and at every rerun; the samples are then drawn from it by index, from (seed, step), as
from in-memory arrays. When the data holds more examples than the capacity, the pool is a
uniform random subset of them (the digests are a seeded hash); N, the size of the training
set in the sampling corrections (Eq. 1, the standard errors), stays the count of one pass.

The capacity is `pool_size` when given, else `DEFAULT_POOL_EXAMPLES` examples and at most
`DEFAULT_POOL_BYTES` of example data (from the examples' shapes and dtypes). A pipeline that
computes different bits (a different float order in a `map`, a random augmentation) holds
different examples: measure on the pipeline without its random augmentation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

DEFAULT_POOL_EXAMPLES = 100_000
"""At most this many examples in a pool when `pool_size` is not given."""
DEFAULT_POOL_BYTES = 1 << 30
"""At most this much example data (1 GiB) in a pool when `pool_size` is not given."""
_CHUNK = 4096  # examples hashed at a time


def _canonical_rows(leaf: np.ndarray) -> np.ndarray:
    """(n, k) rows whose bytes identify each example's values: numbers as float64 (so that
    int32 and int64 labels, or float32 features read back from float64, hash alike; -0.0 as
    0.0), strings as they are (object rows)."""
    leaf = np.asarray(leaf)
    n = leaf.shape[0]
    if leaf.dtype.kind in "biuf":
        return np.ascontiguousarray(leaf.reshape(n, -1), dtype=np.float64) + 0.0
    return leaf.reshape(n, -1).astype(object)


def example_digests(leaves: list[np.ndarray], seed: int) -> np.ndarray:
    """The uint64 digest of each example (the rows of `leaves`, the flattened (x, y) of a
    batch): BLAKE2b keyed by `seed` over the example's canonical values."""
    key = int(seed).to_bytes(16, "little", signed=True)
    rows = [_canonical_rows(leaf) for leaf in leaves]
    n = len(rows[0])
    out = np.empty(n, np.uint64)
    for i in range(n):
        h = hashlib.blake2b(key=key, digest_size=8)
        for r in rows:
            if r.dtype == object:
                for value in r[i]:
                    data = value if isinstance(value, bytes) else str(value).encode()
                    h.update(len(data).to_bytes(8, "little"))
                    h.update(data)
            else:
                h.update(r[i])
        out[i] = int.from_bytes(h.digest(), "big")
    return out


def example_bytes(element_spec: Any) -> int | None:
    """Bytes of one example from its (per-example) TensorSpecs; None if not fixed."""
    total = 0
    for spec in tf.nest.flatten(element_spec):
        if not spec.shape.is_fully_defined() or spec.dtype == tf.string:
            return None
        total += int(np.prod(spec.shape.as_list(), dtype=np.int64)) * spec.dtype.size
    return total


def capacity(pool_size: int | None, bytes_per_example: int | None) -> int:
    """`pool_size` if given, else the defaults (`DEFAULT_POOL_EXAMPLES`, `DEFAULT_POOL_BYTES`)."""
    if pool_size is not None:
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size: must be a positive integer, got {pool_size!r}")
        return pool_size
    if bytes_per_example:
        return max(1, min(DEFAULT_POOL_EXAMPLES, DEFAULT_POOL_BYTES // bytes_per_example))
    return DEFAULT_POOL_EXAMPLES


@dataclass(frozen=True)
class Pool:
    """The examples of a pool (`examples`: the (x, y) nest of arrays, smallest digest first),
    their `digests`, `num_examples` N in one pass of the data, and `batches_per_pass` (the
    batches of one pass of the user's pipeline or generator, when known)."""

    examples: Any
    digests: np.ndarray
    num_examples: int
    batches_per_pass: int | None = None

    @property
    def size(self) -> int:
        return len(self.digests)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of N and the pool's digests: the same examples in the same order."""
        h = hashlib.sha256(f"{self.num_examples}:{self.size}:".encode())
        h.update(self.digests.astype(">u8").tobytes())
        return h.hexdigest()

    def identity(self, capacity: int) -> dict[str, Any]:
        """What metadata.json records of it (`pool`): size, N, capacity, fingerprint."""
        return {
            "examples": self.size,
            "of": self.num_examples,
            "capacity": int(capacity),
            "fingerprint": self.fingerprint,
        }


def _select(digests: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the `keep` smallest digests, smallest first (ties: in the given order)."""
    if keep < len(digests):
        part = np.argpartition(digests, keep - 1)[:keep]
        return part[np.argsort(digests[part], kind="stable")]
    return np.argsort(digests, kind="stable")


def _take(nest: Any, index: np.ndarray) -> Any:
    return tf.nest.map_structure(lambda a: np.asarray(a)[index], nest)


def pool_of_arrays(examples: Any, seed: int, keep: int) -> Pool:
    """The pool of in-memory (x, y) arrays."""
    leaves = [np.asarray(a) for a in tf.nest.flatten(examples)]
    n = len(leaves[0])
    digests = np.concatenate(
        [
            example_digests([leaf[a : a + _CHUNK] for leaf in leaves], seed)
            for a in range(0, n, _CHUNK)
        ]
        or [np.empty(0, np.uint64)]
    )
    order = _select(digests, keep)
    return Pool(_take(examples, order), digests[order], n)


def pool_of_batches(batches: Iterable[Any], seed: int, keep: int, *, name: str) -> Pool:
    """The pool of a stream of (x, y) batches of numpy arrays (read once): the `keep` examples
    of smallest digest, holding at most 2 * `keep` examples while reading."""
    kept: list[tuple[np.ndarray, Any]] = []
    held = count = batches_read = 0
    for batch in batches:
        batches_read += 1
        n = len(tf.nest.flatten(batch)[0])
        count += n
        kept.append((example_digests(tf.nest.flatten(batch), seed), batch))
        held += n
        if held > 2 * keep:
            kept = [_concat_and_select(kept, keep, name)]
            held = keep
    if count == 0:
        raise ValueError(f"{name}: holds no examples")
    digests, examples = _concat_and_select(kept, keep, name)
    return Pool(examples, digests, count, batches_read)


def _concat_and_select(chunks: list[tuple[np.ndarray, Any]], keep: int, name: str):
    digests = np.concatenate([d for d, _ in chunks])
    try:
        examples = tf.nest.map_structure(
            lambda *parts: np.concatenate(parts), *[e for _, e in chunks]
        )
    except ValueError as err:
        raise ValueError(
            f"{name}: examples of different shapes cannot be measured together ({err}); "
            "pad them to one shape"
        ) from err
    order = _select(digests, keep)
    return digests[order], _take(examples, order)

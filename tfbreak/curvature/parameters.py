"""Flat parameter-space vectors: one 1-D tensor for a list of variables (docs/architecture.md,
conventions)."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf


def as_tf_variable(v):
    """Keras 3 wraps a tf.Variable in `.value`; ForwardAccumulator needs the tf.Variable."""
    inner = getattr(v, "value", None)
    return inner if isinstance(inner, tf.Variable) else v


class ParameterSpace:
    """The parameter vector theta of a list of variables, flattened in list order.

    Vectors of this space are flat tensors of the variables' dtype (float32 for a float32 model);
    `to_numpy` gives float64 host copies for the host-side numerics.
    """

    def __init__(self, variables: Sequence[tf.Variable]):
        variables = [as_tf_variable(v) for v in variables]
        if not variables:
            raise ValueError("variables: need at least one trainable variable, got none")
        for v in variables:
            if not isinstance(v, tf.Variable):
                raise TypeError(f"variables: expected tf.Variable or keras.Variable, got {type(v)}")
        dtypes = {v.dtype for v in variables}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating:
            raise TypeError(
                f"variables: need one floating dtype for all, got {sorted(map(str, dtypes))}"
            )
        self.variables: list[tf.Variable] = variables
        self.dtype: tf.DType = variables[0].dtype
        self.shapes = [tuple(v.shape) for v in variables]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.dim = int(sum(self.sizes))

    def dense(self, tensors: Sequence[tf.Tensor | tf.IndexedSlices | None]) -> list[tf.Tensor]:
        """Per-variable tensors as dense tensors of the space's dtype (gradients may be
        IndexedSlices or None = zero)."""
        parts = []
        for t, v in zip(tensors, self.variables, strict=True):
            if t is None:
                t = tf.zeros_like(v)
            elif isinstance(t, tf.IndexedSlices):
                t = tf.convert_to_tensor(t)
            parts.append(tf.cast(t, self.dtype))
        return parts

    def flatten(self, tensors: Sequence[tf.Tensor | tf.IndexedSlices | None]) -> tf.Tensor:
        """Concatenate per-variable tensors (`dense`) into one flat vector."""
        return tf.concat([tf.reshape(t, [-1]) for t in self.dense(tensors)], axis=0)

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """[start, stop) of each variable in the flat vector."""
        stops = np.cumsum(self.sizes, dtype=np.int64)
        return [(int(z - n), int(z)) for z, n in zip(stops, self.sizes, strict=True)]

    def unflatten(self, vector: tf.Tensor) -> list[tf.Tensor]:
        """Split a flat vector into tensors shaped like the variables."""
        parts = tf.split(vector, self.sizes)
        return [tf.reshape(p, s) for p, s in zip(parts, self.shapes, strict=True)]

    def values(self) -> tf.Tensor:
        """theta as one flat tensor."""
        return self.flatten([v.read_value() for v in self.variables])

    def assign(self, vector: tf.Tensor) -> None:
        """Set theta from a flat vector (exact: no arithmetic on the values)."""
        for v, part in zip(
            self.variables, self.unflatten(tf.cast(vector, self.dtype)), strict=True
        ):
            v.assign(part)

    def to_device(self, vector: np.ndarray | tf.Tensor, name: str = "v") -> tf.Tensor:
        """A host vector (any float dtype) as a flat tensor of the variables' dtype."""
        t = tf.convert_to_tensor(vector)
        if t.shape.rank != 1 or t.shape[0] != self.dim:
            raise ValueError(
                f"{name}: expected a flat vector of length {self.dim}, got shape {t.shape}"
            )
        return tf.cast(t, self.dtype)

    def rows_to_device(self, vectors: np.ndarray | tf.Tensor, name: str = "vectors") -> tf.Tensor:
        """Host vectors as the rows of a (b, D) tensor of the variables' dtype (`host_tensor`:
        aligned host rows are used in place)."""
        if isinstance(vectors, np.ndarray):
            t = host_tensor(vectors)
        else:
            t = tf.convert_to_tensor(vectors)
        self.check_rows(tuple(t.shape), name)
        return tf.cast(t, self.dtype)

    def check_rows(self, shape: tuple, name: str = "vectors") -> None:
        """ValueError naming `name` unless `shape` is that of vectors as rows, (b, D), b >= 1."""
        if len(shape) != 2 or shape[1] != self.dim or shape[0] == 0:
            raise ValueError(
                f"{name}: expected vectors as rows of shape (b, {self.dim}), b >= 1, got shape "
                f"{tf.TensorShape(shape)}"
            )


class LossFunctions:
    """Base of the objects that differentiate a loss with respect to a list of variables (the
    gradients, Delta L, the curvature along a direction): the parameter space, the loss callable
    `loss_fn(batch)` -> per-example losses, the optional tf.distribute strategy the variables
    were created under, and a count of `tf.function` traces (each should be traced once).
    Subclasses create their batch functions in `_build`."""

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        loss_fn: Callable[[Any], tf.Tensor],
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.space = ParameterSpace(variables)
        self.loss_fn = loss_fn
        self.strategy = strategy
        self.traces = 0
        self._build()

    def _build(self) -> None:
        """Create the subclass's `BatchFunction`s (called once, by __init__)."""


TENSOR_ALIGNMENT = 64
"""Bytes a host buffer's address must be a multiple of for a tensor to use it in place
(`EIGEN_MAX_ALIGN_BYTES`: TensorFlow aborts on a less aligned buffer)."""


def aligned_rows(rows: int, dim: int, dtype) -> np.ndarray:
    """An uninitialised (rows, dim) host array whose rows each start at a multiple of
    `TENSOR_ALIGNMENT` bytes (rows padded to that length: a view of a larger buffer), so each
    row can be used as a tensor in place."""
    dtype = np.dtype(dtype)
    stride = -(-dim * dtype.itemsize // TENSOR_ALIGNMENT) * TENSOR_ALIGNMENT
    buffer = np.empty(rows * stride + TENSOR_ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % TENSOR_ALIGNMENT
    padded = buffer[start : start + rows * stride].view(dtype).reshape(rows, -1)
    return padded[:, :dim]


def _in_place(row: np.ndarray) -> bool:
    flags = row.flags
    return flags.c_contiguous and flags.writeable and row.ctypes.data % TENSOR_ALIGNMENT == 0


def host_tensor(rows: np.ndarray) -> tf.Tensor:
    """Host rows (b, D) as a tensor of their dtype. A row that is contiguous and
    `TENSOR_ALIGNMENT`-aligned (e.g. a `krylov.HostBasis` row) is used in place (DLPack), so one
    row costs no copy and several one (their stacking); other arrays are converted, which
    holds two copies of them (measured: 2 x the size of a (1, 1e7) float32 row). The caller
    keeps the rows unchanged while the tensor is used."""
    if rows.ndim != 2 or rows.shape[0] == 0 or not all(_in_place(row) for row in rows):
        return tf.convert_to_tensor(rows)
    tensors = [tf.experimental.dlpack.from_dlpack(row.__dlpack__()) for row in rows]
    return tensors[0][None] if len(tensors) == 1 else tf.stack(tensors)


def host_pieces(space: ParameterSpace, row: np.ndarray) -> list[tf.Tensor]:
    """A host vector (D,) of the space's dtype as tensors shaped like the variables: each
    variable's slice is used in place (DLPack) when it is `TENSOR_ALIGNMENT`-aligned (the first
    one of a `krylov.HostBasis` row), else copied once into aligned memory. (TensorFlow's own
    split of a flat vector copies every piece once its pieces are not all aligned, and its
    unstack of a row copies the row.)"""
    pieces = []
    for (a, z), shape in zip(space.offsets, space.shapes, strict=True):
        values = row[a:z]
        if not _in_place(values):
            values = aligned_rows(1, z - a, row.dtype)[0]
            values[:] = row[a:z]
        pieces.append(tf.reshape(tf.experimental.dlpack.from_dlpack(values.__dlpack__()), shape))
    return pieces


class _DLPackTensor:
    """A CPU tensor seen through the DLPack protocol (np.from_dlpack takes an object with
    __dlpack__; TensorFlow gives a capsule)."""

    def __init__(self, tensor: tf.Tensor):
        self.tensor = tensor

    def __dlpack__(self, **_):
        return tf.experimental.dlpack.to_dlpack(self.tensor)

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU


def host_array(tensor: tf.Tensor) -> np.ndarray:
    """A tensor's values as a writable host array of its dtype: its own memory for a tensor in
    host memory (tensor.numpy() copies), else a copy. The tensor must not be used afterwards."""
    if tf.DeviceSpec.from_string(tensor.device or "CPU").device_type in ("CPU", None):
        return np.from_dlpack(_DLPackTensor(tensor))
    return tensor.numpy()


def all_finite(rows: np.ndarray, chunk: int = 1 << 20) -> bool:
    """No NaN or inf in host rows (b, D), checked `chunk` elements at a time (no array of
    flags of their size)."""
    return all(
        bool(np.isfinite(row[a : a + chunk]).all())
        for row in rows
        for a in range(0, row.shape[0], chunk)
    )


RELEASE_BYTES = 1 << 26
"""Products of at least this many bytes (64 MiB: D >= 16.8M in float32) are followed by
`release_free_heap`; below, the ~12 ms it takes would slow the many passes of a small model."""


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc
        return None


def release_free_heap(nbytes: int) -> None:
    """Give the C heap's free pages back to the operating system (glibc's malloc_trim) after a
    pass whose products took `nbytes` (>= `RELEASE_BYTES`). The pass's temporaries below
    malloc's mmap threshold (activations, per-variable pieces) are freed into the heap, whose
    pages glibc keeps: on a 45.5M-parameter MLP the resident set grew by ~1.1 V per
    Hessian-vector pass instead of 1.0 V (the basis row), ~1 V over 19 passes."""
    trim = _malloc_trim()
    if trim is not None and nbytes >= RELEASE_BYTES:
        trim(0)


def to_numpy(vector: tf.Tensor) -> np.ndarray:
    """Host float64 copy of a device vector."""
    return np.asarray(vector.numpy() if hasattr(vector, "numpy") else vector, dtype=np.float64)

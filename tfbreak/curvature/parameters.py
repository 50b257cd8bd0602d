"""Flat parameter-space vectors: one 1-D tensor for a list of variables (docs/architecture.md,
conventions)."""

from __future__ import annotations

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

    def flatten(self, tensors: Sequence[tf.Tensor | tf.IndexedSlices | None]) -> tf.Tensor:
        """Concatenate per-variable tensors (gradients may be IndexedSlices or None = zero)."""
        parts = []
        for t, v in zip(tensors, self.variables, strict=True):
            if t is None:
                t = tf.zeros_like(v)
            elif isinstance(t, tf.IndexedSlices):
                t = tf.convert_to_tensor(t)
            parts.append(tf.reshape(tf.cast(t, self.dtype), [-1]))
        return tf.concat(parts, axis=0)

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
        if t.shape.rank != 2 or t.shape[1] != self.dim or t.shape[0] == 0:
            raise ValueError(
                f"{name}: expected vectors as rows of shape (b, {self.dim}), b >= 1, got shape "
                f"{t.shape}"
            )
        return tf.cast(t, self.dtype)


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


def to_numpy(vector: tf.Tensor) -> np.ndarray:
    """Host float64 copy of a device vector."""
    return np.asarray(vector.numpy() if hasattr(vector, "numpy") else vector, dtype=np.float64)

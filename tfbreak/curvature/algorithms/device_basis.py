"""The Krylov basis in accelerator memory: `krylov.HostBasis` as a tf.Variable.

For a Hessian whose products stay on the accelerator (`HessianOperator.apply_block`), the basis
vectors are never copied to the host: inner products and updates run on the device, in float64,
one column chunk at a time; only the coefficients and the final Ritz vectors reach the host. The
variable holds its full capacity from the start (capacity x D x itemsize bytes of device memory).
On a machine without an accelerator the variable lives in host memory: the same memory as
`HostBasis`, all of it allocated at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfbreak.curvature.algorithms.krylov import unit_roundoff

DEVICE_CHUNK_ELEMENTS = 1 << 24
"""Float64 elements of the device temporaries of one column chunk (128 MiB)."""


class DeviceBasis:
    """Orthonormal vectors in a (capacity, D) tf.Variable of `dtype` on the default device; the
    methods of `krylov.HostBasis`, on tensors."""

    def __init__(self, dim: int, capacity: int, dtype):
        self.dtype = np.dtype(dtype)
        self.dim = int(dim)
        self.data = tf.Variable(tf.zeros((int(capacity), self.dim), self.dtype), trainable=False)
        self.size = 0
        self.made = 0

    @property
    def precision(self) -> float:
        """(made + 4) u, as `HostBasis.precision`."""
        return (self.made + 4) * unit_roundoff(self.dtype)

    def _chunks(self, rows: int) -> Iterator[tuple[int, int]]:
        width = max(1024, DEVICE_CHUNK_ELEMENTS // max(int(rows), 1))
        for a in range(0, self.dim, width):
            yield a, min(a + width, self.dim)

    def rows(self, indices: Sequence[int]) -> tf.Tensor:
        return tf.gather(self.data, list(indices))

    @staticmethod
    def stack(rows: Sequence[tf.Tensor]) -> tf.Tensor:
        return tf.stack(rows)

    @staticmethod
    def unstack(products: tf.Tensor) -> list[tf.Tensor]:
        return tf.unstack(products)

    def work(self, w) -> tf.Tensor:
        return tf.cast(tf.convert_to_tensor(w), self.dtype)

    @staticmethod
    def work64(v: np.ndarray) -> tf.Tensor:
        return tf.convert_to_tensor(np.asarray(v, dtype=np.float64))

    def norm(self, w: tf.Tensor) -> float:
        """||w||, accumulated in float64."""
        total = sum(
            float(tf.reduce_sum(tf.square(tf.cast(w[a:b], tf.float64)))) for a, b in self._chunks(1)
        )
        return float(np.sqrt(total))

    def _block(self, a: int, b: int) -> tf.Tensor:
        return tf.cast(self.data[: self.size, a:b], tf.float64)

    def orthogonalize(self, w: tf.Tensor) -> tuple[tf.Tensor, np.ndarray]:
        """(w - Q Q^T w, the summed coefficients) by two passes of classical Gram-Schmidt in
        float64, as `HostBasis.orthogonalize` (a new tensor of w's dtype)."""
        coeffs = np.zeros(self.size)
        if self.size == 0:
            return w, coeffs
        chunks = list(self._chunks(self.size))
        for _ in range(2):
            c = tf.add_n(
                [
                    tf.linalg.matvec(self._block(a, b), tf.cast(w[a:b], tf.float64))
                    for a, b in chunks
                ]
            )
            w = tf.concat(
                [
                    tf.cast(
                        tf.cast(w[a:b], tf.float64)
                        - tf.linalg.matvec(self._block(a, b), c, transpose_a=True),
                        w.dtype,
                    )
                    for a, b in chunks
                ],
                axis=0,
            )
            coeffs += c.numpy()
        return w, coeffs

    def append(self, w: tf.Tensor, scale: float) -> None:
        """Store w / scale as the next basis vector (rounded to the basis' dtype)."""
        if self.size == int(self.data.shape[0]):
            raise RuntimeError(f"Krylov basis: all {self.size} rows are in use")
        for a, b in self._chunks(1):
            part = tf.cast(w[a:b], tf.float64) / scale
            self.data[self.size, a:b].assign(tf.cast(part, self.dtype))
        self.size += 1
        self.made += 1

    def rotate(self, indices: Sequence[int], g: np.ndarray) -> None:
        """Replace the basis vectors `indices` by g @ them (g orthogonal), in float64."""
        rows = tf.gather(self.data, list(indices))
        g = tf.constant(g, tf.float64)
        for a, b in self._chunks(len(indices)):
            new = tf.cast(g @ tf.cast(rows[:, a:b], tf.float64), self.dtype)
            for i, index in enumerate(indices):
                self.data[index, a:b].assign(new[i])

    def compress(self, s: np.ndarray, multiplied: Sequence[int], pending: Sequence[int]) -> None:
        """[Q_m s, P] in place, as `HostBasis.compress`, one column chunk at a time."""
        keep, rows = s.shape[1], list(multiplied)
        st = tf.constant(s.T, tf.float64)
        for a, b in self._chunks(len(rows)):
            y = tf.cast(st @ tf.cast(tf.gather(self.data[:, a:b], rows), tf.float64), self.dtype)
            p = tf.gather(self.data[:, a:b], list(pending))
            self.data[: keep + len(pending), a:b].assign(tf.concat([y, p], axis=0))
        self.size = keep + len(pending)
        self.made += keep

    def combine(self, s: np.ndarray, indices: Sequence[int]) -> np.ndarray:
        """sum_i s[i, j] q_{indices[i]} for each column j of s: (columns, D) host array of the
        basis' dtype, accumulated in float64 on the device."""
        out = np.empty((s.shape[1], self.dim), self.dtype)
        st = tf.constant(s.T, tf.float64)
        for a, b in self._chunks(len(indices)):
            part = tf.gather(self.data[:, a:b], list(indices))
            out[:, a:b] = (st @ tf.cast(part, tf.float64)).numpy()
        return out

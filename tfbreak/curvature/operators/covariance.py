"""The covariance of gradients K as an operator, from L gradients (paper Sec. 3 and App. C).

With g_1..g_L the gradients of L mini-batches of size M (M = 1: per-example gradients) and
g_bar = (1/L) sum_i g_i,

    K_M = (1/L) sum_i (g_i - g_bar)(g_i - g_bar)^T,
    K_M v = (1/L) sum_i (g_i - g_bar) <g_i - g_bar, v>.

K_M is never formed. The operator keeps the L gradients as they are (L parameter-sized buffers);
inner products with the deviations g_i - g_bar are computed in float64, block by block (the
block of the L gradients is cast to float64 and centred at its mean there, once), so a common
mean much larger than the spread costs no accuracy; sum_i c_i (g_i - g_bar) is
sum_i (c_i - c_bar) g_i. The spectrum comes from the L x L Gram matrix of the deviations
(`algorithms.covariance_spectrum`).

Memory: L x D x 4 bytes for a float32 model (mBERT, D = 178M, L = 25: 17.8 GB), on the device,
or in host memory (`on_host=True`), plus one float64 column block (CHUNK_ELEMENTS) at a time.
When the device runs out of memory while the gradients are computed, the ones computed so far
move to host memory and the rest follow them there (a `KStorageWarning` says so).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np
import tensorflow as tf

from tfbreak.curvature.gradients import GradientFunctions
from tfbreak.curvature.operators.base import CurvatureOperator
from tfbreak.curvature.sharding import Batch, num_examples, split_batches

CHUNK_ELEMENTS = 1 << 24
"""Float64 elements per block of the chunked inner products (128 MiB)."""


class KStorageWarning(UserWarning):
    """The device ran out of memory for K's gradients: they are kept in host memory."""


def _is_matrix(vectors) -> bool:
    return hasattr(vectors, "shape") and len(vectors.shape) == 2


def _float64(vectors, a: int, b: int):
    """Columns a:b of the vectors (a list of vectors, or the rows of a matrix) as one float64
    (n, b - a) matrix (on the host for arrays, on the device for tensors)."""
    if _is_matrix(vectors):
        part = vectors[:, a:b]
        return (
            part.astype(np.float64) if isinstance(part, np.ndarray) else tf.cast(part, tf.float64)
        )
    if isinstance(vectors[0], np.ndarray):
        return np.stack([v[a:b] for v in vectors]).astype(np.float64)
    return tf.cast(tf.stack([v[a:b] for v in vectors]), tf.float64)


def _deviation_blocks(gradients):
    """(a, b, D_ab): column blocks of the deviations g_i - g_bar, centred in float64."""
    dim = int(gradients.shape[1]) if _is_matrix(gradients) else int(gradients[0].shape[0])
    width = max(1, CHUNK_ELEMENTS // len(gradients))
    for a in range(0, dim, width):
        block = _float64(gradients, a, a + width)
        mean = block.mean(axis=0) if isinstance(block, np.ndarray) else tf.reduce_mean(block, 0)
        yield a, a + width, block - mean


def _matmul(x, y, transpose_b: bool = False):
    if isinstance(x, np.ndarray):
        return x @ (y.T if transpose_b else y)
    return tf.matmul(x, y, transpose_b=transpose_b)


def computed_gradients(compute: Callable, items: Iterable, *, on_host: bool):
    """(the gradients compute(item) of the items, whether they are on the host): kept on the
    device, or in host memory when `on_host`; when the device runs out of memory, the gradients
    computed so far move to host memory, one at a time, and the rest follow them there."""
    kept: list = []
    for item in items:
        try:
            g = compute(item)
        except tf.errors.ResourceExhaustedError:
            if on_host:
                raise
            warnings.warn(
                f"K: the device ran out of memory after {len(kept)} gradients; they and the rest "
                "are kept in host memory (float32)",
                KStorageWarning,
                stacklevel=3,
            )
            on_host = True
            for i, previous in enumerate(kept):
                kept[i] = np.asarray(previous)
            g = compute(item)
        kept.append(np.asarray(g) if on_host else g)
    return kept, on_host


class StackedGradients:
    """L gradients kept as they are (L parameter-sized buffers: tensors on the device, or numpy
    arrays on the host; a list of vectors or the rows of one (L, D) matrix); inner products with
    the deviations are computed in float64, block by block, the block centred at its mean there
    once."""

    def __init__(self, gradients: Iterable[tf.Tensor | np.ndarray], *, on_host: bool):
        self.on_host = on_host
        if _is_matrix(gradients):
            self.gradients = np.asarray(gradients) if on_host else tf.convert_to_tensor(gradients)
            self.L = int(self.gradients.shape[0])
            return
        self.gradients: list = []
        for g in gradients:
            g = np.asarray(g) if on_host else tf.convert_to_tensor(g)
            if g.ndim != 1:
                raise ValueError(
                    f"gradients: each must be a flat vector, got shape {tuple(g.shape)}"
                )
            if self.gradients and g.shape[0] != self.gradients[0].shape[0]:
                raise ValueError(
                    f"gradients: all gradients must have the same length, got {g.shape[0]} "
                    f"after {self.gradients[0].shape[0]}"
                )
            self.gradients.append(g)
        self.L = len(self.gradients)

    @property
    def dim(self) -> int:
        g = self.gradients
        return int(g.shape[1]) if _is_matrix(g) else int(g[0].shape[0])

    @property
    def dtype(self):
        return self.gradients.dtype if _is_matrix(self.gradients) else self.gradients[0].dtype

    def _vector(self, g):
        """A parameter-space vector in the gradients' storage (array, or tensor of their dtype)."""
        if self.on_host:
            return np.asarray(g)
        return tf.cast(tf.convert_to_tensor(g), self.dtype)

    def gram(self) -> np.ndarray:
        """The L x L Gram matrix [<g_i - g_bar, g_j - g_bar>]_ij of the deviations, float64."""
        return sum(
            np.asarray(_matmul(d, d, transpose_b=True))
            for _, _, d in _deviation_blocks(self.gradients)
        )

    def dots(self, g) -> np.ndarray:
        """[<g_i - g_bar, g>]_i for a parameter-space vector g (host or device), float64."""
        g = self._vector(g)
        return sum(
            np.asarray(_matmul(d, _float64([g], a, b), transpose_b=True))[:, 0]
            for a, b, d in _deviation_blocks(self.gradients)
        )

    def norm(self, g) -> float:
        """||g||, in float64."""
        g = self._vector(g)
        if self.on_host:
            return float(np.linalg.norm(g.astype(np.float64)))
        return float(tf.norm(tf.cast(g, tf.float64)))

    def combine(self, coeffs: np.ndarray):
        """sum_i c_ki (g_i - g_bar) for each row c_k of `coeffs` (k, L): (k, D) parameter-space
        vectors, computed in float64 and returned in the gradients' storage and dtype."""
        c = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
        if not self.on_host:
            c = tf.constant(c)
        parts = [_matmul(c, d) for _, _, d in _deviation_blocks(self.gradients)]
        if self.on_host:
            return np.concatenate(parts, axis=1).astype(self.dtype)
        return tf.cast(tf.concat(parts, axis=1), self.dtype)


class GradientSet(Protocol):
    """L gradients known through their deviations d_i = g_i - g_bar: the Gram matrix of the
    d_i, their inner products with a vector, their combinations (`StackedGradients`;
    `factored.FactoredGradients` never forms the gradients)."""

    L: int

    @property
    def dim(self) -> int: ...

    def gram(self) -> np.ndarray: ...

    def dots(self, g) -> np.ndarray: ...

    def norm(self, g) -> float: ...

    def combine(self, coeffs: np.ndarray): ...


class PerExampleFactors(Protocol):
    """Gives the per-example gradients of a batch as a `GradientSet` without forming them
    (`keras_per_example.KerasPerExample`)."""

    def factors(self, batch: Batch) -> GradientSet: ...


class CovarianceOperator(CurvatureOperator):
    r"""K_M estimated from L gradients g_i of mini-batches of M examples (App. C):

    .. math:: K_M = \frac{1}{L} \sum_{i=1}^{L} (g_i - \bar g)(g_i - \bar g)^T, \qquad
              \bar g = \frac{1}{L} \sum_{i=1}^{L} g_i,

    applied as K v = (1/L) sum_i (g_i - g_bar) <g_i - g_bar, v>, never formed (D x D). It is
    the covariance of the L gradients with divisor L:

    >>> import numpy as np
    >>> g = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    >>> K = CovarianceOperator(list(g), M=1, on_host=True)
    >>> bool(np.allclose(K.matvec(np.array([1.0, -1.0])), np.cov(g.T, bias=True) @ [1.0, -1.0]))
    True

    Build it from gradients, or with `minibatches` (L mini-batches of M examples) or
    `per_example` (M = 1: the per-example gradients of one batch of L examples), or from any
    `GradientSet` (`from_set`: e.g. the per-layer factors of the per-example gradients). The
    gradients stay on the device (tensors) or in host memory (`on_host=True`, numpy arrays,
    for models too large for the device; on a CPU-only machine both are host memory).
    """

    def __init__(self, gradients: Iterable[tf.Tensor | np.ndarray], M: int, *, on_host=False):
        self._init(StackedGradients(gradients, on_host=on_host), M)

    def _init(self, gradients: GradientSet, M: int) -> None:
        if not isinstance(M, int | np.integer) or M < 1:
            raise ValueError(f"M: examples per gradient must be a positive integer, got {M!r}")
        self.M = int(M)
        self.gradients = gradients
        self.L = gradients.L
        if self.L < 2:
            raise ValueError(f"gradients: need L >= 2 gradients for a covariance, got L = {self.L}")

    @classmethod
    def from_set(cls, gradients: GradientSet, M: int) -> CovarianceOperator:
        """K_M from a `GradientSet` of L gradients of M examples each."""
        op = cls.__new__(cls)
        op._init(gradients, M)
        return op

    @classmethod
    def minibatches(
        cls, gradients: GradientFunctions, batches: Sequence[Batch], *, on_host: bool
    ) -> CovarianceOperator:
        """K_M from the mean-loss gradients of `batches` (M: the size of the first batch), kept
        on the device (in host memory from the start with `on_host`, or from the point where
        the device runs out of memory: `computed_gradients`)."""
        if not batches:
            raise ValueError("batches: K needs L >= 2 mini-batches, got none")
        kept, on_host = computed_gradients(gradients.minibatch, batches, on_host=on_host)
        return cls(kept, M=num_examples(batches[0]), on_host=on_host)

    @classmethod
    def per_example(
        cls,
        gradients: GradientFunctions,
        batch: Batch,
        factored: PerExampleFactors | None = None,
        *,
        on_host: bool,
    ) -> CovarianceOperator:
        """The per-example K (M = 1) from the L examples of `batch`: from their per-layer
        factors when `factored` (a `keras_per_example.KerasPerExample`) is given, never forming
        the L x D gradients; else from the (L, D) per-example gradients, computed together on
        the device, or one example at a time into host memory (`on_host`, or when the device
        runs out of memory)."""
        if factored is not None:
            return cls.from_set(factored.factors(batch), M=1)
        if not on_host:
            try:
                return cls(gradients.per_example(batch), M=1)
            except tf.errors.ResourceExhaustedError:
                warnings.warn(
                    "K: the device ran out of memory for the per-example gradients; they are "
                    "computed one at a time into host memory (float32)",
                    KStorageWarning,
                    stacklevel=2,
                )
        examples = split_batches(batch, 1)
        kept, _ = computed_gradients(gradients.minibatch, examples, on_host=True)
        return cls(kept, M=1, on_host=True)

    @property
    def dim(self) -> int:
        return self.gradients.dim

    def gram(self) -> np.ndarray:
        """The L x L Gram matrix [<g_i - g_bar, g_j - g_bar>]_ij of the deviations, float64."""
        gram = self.gradients.gram()
        if not np.all(np.isfinite(gram)):
            raise FloatingPointError("gradients: contain NaN or infinity; K cannot be estimated")
        return 0.5 * (gram + gram.T)

    def dots(self, g) -> np.ndarray:
        """[<g_i - g_bar, g>]_i for a parameter-space vector g (host or device), float64."""
        return self.gradients.dots(g)

    def norm(self, g) -> float:
        """||g||, in float64."""
        return self.gradients.norm(g)

    def combine(self, coeffs: np.ndarray):
        """sum_i c_ki (g_i - g_bar) for each row c_k of `coeffs` (k, L): (k, D) parameter-space
        vectors, computed in float64 and returned in the gradients' storage and dtype."""
        return self.gradients.combine(coeffs)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(self.combine(self.dots(v) / self.L)[0], dtype=np.float64)

    def per_example_scale(self, num_examples: int) -> float:
        """Factor turning K_M into an estimate of the per-example K: the covariance of an
        M-sample mean (without replacement from N) is K (N - M) / (M (N - 1))."""
        n = int(num_examples)
        if n <= self.M:
            raise ValueError(f"num_examples: must exceed M = {self.M}, got {n}")
        return self.M * (n - 1) / (n - self.M)

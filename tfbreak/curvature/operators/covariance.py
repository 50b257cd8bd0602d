"""The covariance of gradients K as an operator, from L gradients (paper Sec. 3 and App. C).

With g_1..g_L the gradients of L mini-batches of size M (M = 1: per-example gradients) and
g_bar = (1/L) sum_i g_i,

    K_M = (1/L) sum_i (g_i - g_bar)(g_i - g_bar)^T,
    K_M v = (1/L) sum_i (g_i - g_bar) <g_i - g_bar, v>.

K_M is never formed: the operator keeps the L centred gradients (at most L + 2 parameter-sized
buffers), and its spectrum comes from the L x L Gram matrix (`algorithms.covariance_spectrum`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfbreak.curvature.gradients import GradientFunctions
from tfbreak.curvature.operators.base import CurvatureOperator
from tfbreak.curvature.sharding import Batch, num_examples


def inner(a, b) -> float:
    """<a, b> of two parameter-space vectors: in float64 on the host for arrays, in the
    tensors' dtype on the device for tensors."""
    if isinstance(a, np.ndarray):
        return float(np.dot(a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)))
    return float(tf.tensordot(a, b, 1))


def stack(vectors: list):
    """Rows of parameter-space vectors as one (k, D) array or tensor."""
    return np.stack(vectors) if isinstance(vectors[0], np.ndarray) else tf.stack(vectors)


class CovarianceOperator(CurvatureOperator):
    """K_M estimated from L gradients of mini-batches of M examples (App. C).

    Build it from gradients, or with `minibatches` (L mini-batches of M examples) or
    `per_example` (M = 1: the per-example gradients of one batch of L examples). The centred
    gradients stay on the device (tensors) or in host memory (`on_host=True`, numpy arrays, for
    models too large for the device).
    """

    def __init__(self, gradients: Iterable[tf.Tensor | np.ndarray], M: int, *, on_host=False):
        if not isinstance(M, int | np.integer) or M < 1:
            raise ValueError(f"M: examples per gradient must be a positive integer, got {M!r}")
        self.M = int(M)
        self.on_host = on_host
        deviations: list = []
        total = None
        for g in gradients:
            g = np.asarray(g) if on_host else tf.convert_to_tensor(g)
            if g.ndim != 1:
                raise ValueError(
                    f"gradients: each must be a flat vector, got shape {tuple(g.shape)}"
                )
            if deviations and g.shape[0] != deviations[0].shape[0]:
                raise ValueError(
                    f"gradients: all gradients must have the same length, got {g.shape[0]} "
                    f"after {deviations[0].shape[0]}"
                )
            deviations.append(g)
            total = g if total is None else total + g
        self.L = len(deviations)
        if self.L < 2:
            raise ValueError(f"gradients: need L >= 2 gradients for a covariance, got L = {self.L}")
        self.mean = total / self.L
        self.deviations = [g - self.mean for g in deviations]

    @classmethod
    def minibatches(
        cls, gradients: GradientFunctions, batches: Sequence[Batch]
    ) -> CovarianceOperator:
        """K_M from the mean-loss gradients of `batches` (M: the size of the first batch)."""
        if not batches:
            raise ValueError("batches: K needs L >= 2 mini-batches, got none")
        return cls((gradients.minibatch(b) for b in batches), M=num_examples(batches[0]))

    @classmethod
    def per_example(cls, gradients: GradientFunctions, batch: Batch) -> CovarianceOperator:
        """The per-example K (M = 1) from the L examples of `batch`."""
        return cls(tf.unstack(gradients.per_example(batch)), M=1)

    @property
    def dim(self) -> int:
        return int(self.deviations[0].shape[0])

    def matvec(self, v: np.ndarray) -> np.ndarray:
        coeffs = self.dots(np.asarray(v, dtype=np.float64)) / self.L
        return np.asarray(self.combine(coeffs), dtype=np.float64)

    def gram(self) -> np.ndarray:
        """The L x L Gram matrix [<g_i - g_bar, g_j - g_bar>]_ij (float64)."""
        gram = np.empty((self.L, self.L))
        for i in range(self.L):
            for j in range(i + 1):
                gram[i, j] = gram[j, i] = inner(self.deviations[i], self.deviations[j])
        if not np.all(np.isfinite(gram)):
            raise FloatingPointError("gradients: contain NaN or infinity; K cannot be estimated")
        return gram

    def dots(self, g) -> np.ndarray:
        """[<g_i - g_bar, g>]_i for a parameter-space vector g (host or device)."""
        if not self.on_host:
            g = tf.cast(tf.convert_to_tensor(g), self.deviations[0].dtype)
        return np.array([inner(d, g) for d in self.deviations])

    def combine(self, coeffs: np.ndarray):
        """sum_i coeffs_i (g_i - g_bar): a parameter-space vector (tensor, or array on host)."""
        return sum(float(c) * d for c, d in zip(coeffs, self.deviations, strict=True))

    def per_example_scale(self, num_examples: int) -> float:
        """Factor turning K_M into an estimate of the per-example K: the covariance of an
        M-sample mean (without replacement from N) is K (N - M) / (M (N - 1))."""
        n = int(num_examples)
        if n <= self.M:
            raise ValueError(f"num_examples: must exceed M = {self.M}, got {n}")
        return self.M * (n - 1) / (n - self.M)

"""The covariance of gradients K from L gradients through an L x L Gram matrix (paper App. C).

With g_1..g_L gradients of mini-batches of size M (M = 1: per-example gradients) and
g_bar = (1/L) sum_i g_i, K_M = (1/L) sum_i (g_i - g_bar)(g_i - g_bar)^T is never formed:
its non-zero eigenvalues are those of the L x L matrix (1/L) [<g_i - g_bar, g_j - g_bar>]_ij,
at most L - 1 of them, so lambda_*(K) is the (L-1)-th eigenvalue. Its eigenvectors map to
parameter space as e_k = sum_i u_ki (g_i - g_bar) / sqrt(L lambda_k).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfbreak import _native
from tfbreak.curvature.hvp import Batch, LossFn, batch_signature
from tfbreak.curvature.parameters import ParameterSpace


class GradientFunctions:
    """Gradients of the loss as flat vectors, each a `tf.function` traced once per structure.

    `minibatch(batch)`: gradient of the mean loss over the batch.
    `per_example(batch)`: (n, D) per-example gradients, vectorised with `tf.vectorized_map`.
    """

    def __init__(self, variables: Sequence[tf.Variable], loss_fn: LossFn):
        self.space = ParameterSpace(variables)
        self.loss_fn = loss_fn
        self.traces = 0
        self._minibatch = None
        self._per_example = None

    def _gradient(self, batch: Batch) -> tf.Tensor:
        variables = self.space.variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            loss = tf.reduce_mean(self.loss_fn(batch))
        return self.space.flatten(tape.gradient(loss, variables))

    def _minibatch_fn(self, batch: Batch) -> tf.Tensor:
        self.traces += 1
        return self._gradient(batch)

    def _per_example_fn(self, batch: Batch) -> tf.Tensor:
        self.traces += 1

        def one(example):
            return self._gradient(tf.nest.map_structure(lambda t: t[None], example))

        return tf.vectorized_map(one, batch)

    def minibatch(self, batch: Batch) -> tf.Tensor:
        batch = tf.nest.map_structure(tf.convert_to_tensor, batch)
        if self._minibatch is None:
            self._minibatch = tf.function(
                self._minibatch_fn, input_signature=[batch_signature(batch)]
            )
        return self._minibatch(batch)

    def per_example(self, batch: Batch) -> tf.Tensor:
        batch = tf.nest.map_structure(tf.convert_to_tensor, batch)
        if self._per_example is None:
            self._per_example = tf.function(
                self._per_example_fn, input_signature=[batch_signature(batch)]
            )
        return self._per_example(batch)


def _dot(a, b) -> float:
    if isinstance(a, np.ndarray):
        return float(np.dot(a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)))
    return float(tf.tensordot(a, b, 1))


class GradientCovariance:
    """K_M estimated from L gradients of mini-batches of size M (paper App. C).

    Keeps the L centred gradients (on the device, or in host memory with `on_host=True` for
    models too large for the device) plus their mean: at most L + 2 parameter-sized buffers.

    Attributes: eigenvalues (L,) descending, float64; rank; L; M.
    """

    def __init__(
        self, gradients: Iterable[tf.Tensor | np.ndarray], M: int, *, on_host: bool = False
    ):
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
        for i in range(self.L):
            deviations[i] = deviations[i] - self.mean
        self._deviations = deviations
        gram = np.empty((self.L, self.L))
        for i in range(self.L):
            for j in range(i + 1):
                gram[i, j] = gram[j, i] = _dot(deviations[i], deviations[j])
        if not np.all(np.isfinite(gram)):
            raise FloatingPointError("gradients: contain NaN or infinity; K cannot be estimated")
        self.eigenvalues, self._u, self.rank = _native.gram_spectrum(gram, center=True)

    @property
    def lambda_1(self) -> float:
        """lambda_1(K), the spectral norm."""
        return float(self.eigenvalues[0])

    @property
    def lambda_star(self) -> float:
        """lambda_*(K): the (L-1)-th eigenvalue, the smallest one an L-sample covariance can have
        non-zero (App. C)."""
        return float(self.eigenvalues[self.L - 2])

    @property
    def ratio(self) -> float:
        """lambda_*(K) / lambda_1(K) (Conjecture 2); NaN when K = 0."""
        return self.lambda_star / self.lambda_1 if self.lambda_1 > 0 else float("nan")

    @property
    def trace(self) -> float:
        """Tr(K_M) = (1/L) sum_i ||g_i - g_bar||^2 (App. C)."""
        return float(np.sum(self.eigenvalues))

    def per_example_scale(self, num_examples: int) -> float:
        """Factor turning K_M into an estimate of the per-example K: the covariance of an
        M-sample mean (without replacement from N) is K (N - M) / (M (N - 1))."""
        n = int(num_examples)
        if n <= self.M:
            raise ValueError(f"num_examples: must exceed M = {self.M}, got {n}")
        return self.M * (n - 1) / (n - self.M)

    def _top(self, k: int) -> int:
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k: must be a positive integer, got {k!r}")
        if k > self.rank:
            raise ValueError(
                f"k: K has numerical rank {self.rank} (L = {self.L}), cannot give {k} eigenvectors"
            )
        return int(k)

    def eigenvectors(self, k: int = 5):
        """(k, D) unit eigenvectors e_1..e_k of K in parameter space (tensor, or array on host)."""
        k = self._top(k)
        rows = []
        for j in range(k):
            scale = 1.0 / np.sqrt(self.L * self.eigenvalues[j])
            acc = sum(float(self._u[i, j] * scale) * d for i, d in enumerate(self._deviations))
            rows.append(acc)
        return np.stack(rows) if self.on_host else tf.stack(rows)

    def norm_over_top_k_norm(self, g, k: int = 5) -> float:
        """||g|| / ||g_k||, g_k the projection of g onto span(e_1..e_k) (paper Sec. 4.3)."""
        k = self._top(k)
        g = np.asarray(g) if self.on_host else tf.convert_to_tensor(g)
        dots = np.array([_dot(d, g) for d in self._deviations])
        coeffs = (self._u[:, :k].T @ dots) / np.sqrt(self.L * self.eigenvalues[:k])
        return float(np.sqrt(_dot(g, g)) / np.linalg.norm(coeffs))

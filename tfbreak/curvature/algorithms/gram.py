"""The spectrum of K from its L x L Gram matrix (paper App. C).

K_M = (1/L) sum_i d_i d_i^T, d_i = g_i - g_bar, shares its non-zero eigenvalues with the L x L
matrix (1/L) G, G_ij = <d_i, d_j> (`CovarianceOperator.gram`, centred once, in float64;
`_native.gram_spectrum` solves it): at most L - 1 are non-zero, so lambda_*(K) is the (L-1)-th
eigenvalue. An eigenvector u_k of G maps to parameter space as e_k = sum_i u_ki d_i /
sqrt(L lambda_k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfbreak import _native
from tfbreak.curvature.operators.covariance import CovarianceOperator


@dataclass(frozen=True)
class CovarianceSpectrum:
    """The eigenvalues (L,), descending, of a `CovarianceOperator` and its numerical rank, with
    the quantities of the paper: lambda_1, lambda_star, their ratio (Conjecture 2), Tr(K), the
    top eigenvectors and ||g|| / ||g_k|| (Sec. 4.3)."""

    operator: CovarianceOperator
    gram: np.ndarray  # (L, L) Gram matrix of the deviations g_i - g_bar
    eigenvalues: np.ndarray
    vectors: np.ndarray  # (L, L) column k: eigenvector of the Gram matrix
    rank: int

    @property
    def L(self) -> int:
        return self.operator.L

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

    def _top(self, k: int) -> int:
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k: must be a positive integer, got {k!r}")
        if k > self.rank:
            raise ValueError(
                f"k: K has numerical rank {self.rank} (L = {self.L}), cannot give {k} eigenvectors"
            )
        return int(k)

    def eigenvectors(self, k: int):
        """(k, D) unit eigenvectors e_1..e_k of K in parameter space (tensor, or array on host)."""
        k = self._top(k)
        scales = 1.0 / np.sqrt(self.L * self.eigenvalues[:k])
        return self.operator.combine((self.vectors[:, :k] * scales).T)

    def norm_over_top_k_norm(self, g, k: int) -> float:
        """||g|| / ||g_k||, g_k the projection of g onto span(e_1..e_k) (paper Sec. 4.3)."""
        k = self._top(k)
        dots = self.operator.dots(g)
        coeffs = (self.vectors[:, :k].T @ dots) / np.sqrt(self.L * self.eigenvalues[:k])
        return float(self.operator.norm(g) / np.linalg.norm(coeffs))


def covariance_spectrum(op: CovarianceOperator) -> CovarianceSpectrum:
    """Eigenvalues and eigenvectors of K_M from the Gram matrix of the deviations (App. C).

    With Y = [g_1 - g_bar, ..., g_L - g_bar] (D x L), K_M = Y Y^T / L and the Gram matrix
    G = Y^T Y / L have the same non-zero eigenvalues (at most L - 1: the deviations sum to 0),
    and e_k = Y u_k / sqrt(L mu_k) for an eigenpair (mu_k, u_k) of G. In a space of D > L:

    >>> import numpy as np
    >>> g = np.random.default_rng(0).standard_normal((4, 10))
    >>> spectrum = covariance_spectrum(CovarianceOperator(list(g), M=1, on_host=True))
    >>> dense = np.linalg.eigvalsh(np.cov(g.T, bias=True))[::-1]
    >>> bool(np.allclose(spectrum.eigenvalues[:3], dense[:3], rtol=1e-12))
    True
    >>> bool(np.isclose(spectrum.lambda_star, dense[2])), round(float(spectrum.eigenvalues[3]), 12)
    (True, 0.0)
    """
    gram = op.gram()
    values, vectors, rank = _native.gram_spectrum(gram, center=False)
    return CovarianceSpectrum(op, gram, values, vectors, int(rank))

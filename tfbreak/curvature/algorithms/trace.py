"""Tr(H) by Hutchinson's estimator and the spectral density of H by stochastic Lanczos
quadrature (Ghorbani, Krishnan & Xiao 2019, Sec. 3; Ubaru, Chen & Saad 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfbreak import _native
from tfbreak.curvature.algorithms.krylov import dot64
from tfbreak.curvature.algorithms.lanczos import (
    KrylovBasis,
    Operator,
    apply_rows,
    lanczos_tridiagonals,
    operator_dim,
    product_dtype,
)

PROBES_PER_PASS = 4
"""Hutchinson probes multiplied in one block product (`apply_rows`): for the Hessian one pass
over its sample, 1.9-2.0x a gradient per vector on SimpleCNN against ~2.3x alone
(benchmarks/hvp_cost.py); host memory: the 4 probes and their 4 products, in the products'
precision (4 + 4 float32 vectors for a float32 model)."""


def _rademacher(rng: np.random.Generator, dim: int) -> np.ndarray:
    return rng.integers(0, 2, size=dim).astype(np.float64) * 2.0 - 1.0


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class TraceEstimate:
    """Tr(A) ~ mean_l z_l^T A z_l over Rademacher z_l; stderr = std(samples) / sqrt(n)."""

    mean: float
    stderr: float
    samples: np.ndarray


def hutchinson_trace(op: Operator, *, num_samples: int, seed: int = 0) -> TraceEstimate:
    """Hutchinson's unbiased trace estimator E[z^T A z] = Tr(A), z Rademacher (drawn in order,
    multiplied PROBES_PER_PASS at a time; z^T A z accumulated in float64): Tr(H) of the paper's
    Sec. 4.

    z^T A z = Tr(A) + sum_{i != j} A_ij z_i z_j, so on a diagonal matrix every probe is exact:

    >>> import numpy as np, scipy.sparse.linalg as sla
    >>> est = hutchinson_trace(sla.aslinearoperator(np.diag([1.0, 2.0, 3.0])), num_samples=5)
    >>> float(est.mean), float(est.stderr)
    (6.0, 0.0)
    """
    dim = operator_dim(op)
    _check_positive("num_samples", num_samples)
    rng = np.random.default_rng(seed)
    samples = np.empty(num_samples)
    for first in range(0, num_samples, PROBES_PER_PASS):
        z = np.empty((min(PROBES_PER_PASS, num_samples - first), dim), product_dtype(op))
        for row in z:
            row[:] = _rademacher(rng, dim)  # +-1: exact in any dtype
        products = apply_rows(op, z)
        samples[first : first + len(z)] = [dot64(*pair) for pair in zip(z, products, strict=True)]
    stderr = float(samples.std(ddof=1) / np.sqrt(num_samples)) if num_samples > 1 else float("nan")
    return TraceEstimate(mean=float(samples.mean()), stderr=stderr, samples=samples)


@dataclass(frozen=True)
class SpectralDensity:
    """phi(t) = (1/n_v) sum_l sum_j w_lj N(t; x_lj, sigma^2), the eigenvalue density of A
    normalised to integrate to 1 (each eigenvalue has mass 1/D). nodes/weights: one Gauss
    quadrature per probe vector; sum_j w_lj x_lj^p = v_l^T A^p v_l exactly for p <= 2 m - 1."""

    grid: np.ndarray
    density: np.ndarray
    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    sigma: float

    def moment(self, p: int) -> float:
        """The p-th moment of the quadrature measure, an estimate of Tr(A^p) / D."""
        return float(np.mean([w @ x**p for x, w in zip(self.nodes, self.weights, strict=True)]))


def slq_density(
    op: Operator,
    *,
    num_vectors: int,
    steps: int,
    basis: KrylovBasis,
    num_points: int = 1000,
    sigma: float | None = None,
    seed: int = 0,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature: `steps` Lanczos steps from each of `num_vectors` unit
    Rademacher vectors (in lockstep: one block product per step; each with its reorthogonalised
    basis of steps + 1 vectors, stored as `basis` says), Gauss nodes/weights from
    `_native.gauss_quadrature`, broadened by Gaussians of width sigma (default 1% of the spread
    of the nodes) on a uniform grid (Fig. 3; Ghorbani et al. 2019):

        phi(t) = (1/n_v) sum_l sum_j w_lj N(t; x_lj, sigma^2).

    The quadrature of m steps is exact for v^T A^p v, p <= 2m - 1; on A = 2 I every moment is
    exactly 2^p:

    >>> import numpy as np, scipy.sparse.linalg as sla
    >>> dens = slq_density(
    ...     sla.aslinearoperator(2.0 * np.eye(8)), num_vectors=2, steps=3, basis="host"
    ... )
    >>> round(dens.moment(1), 12), round(dens.moment(3), 12)
    (2.0, 8.0)
    """
    dim = operator_dim(op)
    _check_positive("num_vectors", num_vectors)
    _check_positive("steps", steps)
    _check_positive("num_points", num_points)
    rng = np.random.default_rng(seed)
    starts = (_rademacher(rng, dim) / np.sqrt(dim) for _ in range(num_vectors))
    nodes, weights = [], []
    for alpha, beta in lanczos_tridiagonals(op, starts, steps, basis=basis):
        x, w = _native.gauss_quadrature(alpha, beta)
        nodes.append(x)
        weights.append(w)
    lo = min(float(x.min()) for x in nodes)
    hi = max(float(x.max()) for x in nodes)
    if sigma is None:
        sigma = 0.01 * max(hi - lo, abs(hi), 1e-12)
    elif not sigma > 0:
        raise ValueError(f"sigma: must be > 0, got {sigma!r}")
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, num_points)
    density = _native.gaussian_density(nodes, weights, grid, sigma)
    return SpectralDensity(grid=grid, density=density, nodes=nodes, weights=weights, sigma=sigma)

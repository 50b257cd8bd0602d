"""Lanczos with full reorthogonalisation for the top eigenpairs of a symmetric operator, stopped
by a certified error bound (paper App. C uses Lanczos for H).

The Krylov space is built one product at a time from a start block (`krylov.BlockKrylov`: plain
Lanczos for one start vector, band Lanczos for several, e.g. the previous measurement's top
eigenvectors); its Rayleigh-Ritz pairs (theta_j, y_j), with exact residuals, give the certified
intervals lambda_j in [theta_j, theta_j + eps_j] of `bounds.ritz_error_bounds` (Kato-Temple:
eps_j = min(r_j, r_j^2 / gap_j)). Lanczos stops as soon as the intervals of the wanted pairs
are narrower than tol * |theta_1|: a start that is already close stops after a few products.

The operator is anything with `shape` (D, D) and a float64 host `matvec`: a
`tfbreak.curvature.CurvatureOperator` or a `scipy.sparse.linalg.LinearOperator`. An operator
with `matvec_block` (rows (b, D) -> (b, D), e.g. the Hessian's one pass over its sample for
several vectors) gets the products whose vectors are already known together: the pending
vectors of band Lanczos, the start block of a warm start.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from tfbreak.curvature.algorithms.bounds import ritz_error_bounds
from tfbreak.curvature.algorithms.krylov import BlockKrylov, KrylovBreakdown
from tfbreak.curvature.operators.base import rounding_precision


class Operator(Protocol):
    """What the algorithms need of an operator (CurvatureOperator, scipy LinearOperator)."""

    shape: tuple[int, int]

    def matvec(self, v: np.ndarray) -> np.ndarray: ...


def operator_precision(op: Operator) -> float:
    """Relative accuracy of op's products, ||computed - exact|| <= precision * ||A|| ||v||:
    `CurvatureOperator.precision`, float64 rounding for other operators (scipy)."""
    return float(getattr(op, "precision", rounding_precision(np.float64)))


def operator_dim(op: Operator) -> int:
    """D of a square operator; ValueError naming `op` otherwise."""
    shape = tuple(getattr(op, "shape", ()))
    if len(shape) != 2 or shape[0] != shape[1] or not callable(getattr(op, "matvec", None)):
        raise ValueError(
            f"op: expected a square operator with shape (D, D) and matvec, got {type(op).__name__}"
        )
    return int(shape[0])


def apply_rows(op: Operator, vectors: np.ndarray) -> np.ndarray:
    """op v for each row v of `vectors` (b, D) as float64 rows: one block product when op has
    `matvec_block` (the Hessian: one pass over its sample), else one matvec per row."""
    vectors = np.asarray(vectors, dtype=np.float64)
    block = getattr(op, "matvec_block", None)
    if block is not None and len(vectors) > 1:
        products = np.asarray(block(vectors), dtype=np.float64)
        if products.shape != vectors.shape:
            raise ValueError(
                f"matvec_block: returned shape {products.shape}, expected {vectors.shape}"
            )
        return products
    products = [np.asarray(op.matvec(v), dtype=np.float64) for v in vectors]
    for w in products:
        if w.shape != vectors.shape[1:]:
            raise ValueError(f"matvec: returned shape {w.shape}, expected {vectors.shape[1:]}")
    return np.stack(products)


class LanczosWarning(UserWarning):
    """A breakdown forced a restart, or max_iter was reached before the certified tolerance."""


@dataclass(frozen=True)
class LanczosResult:
    """Top-k Ritz pairs of a symmetric operator with certified intervals.

    eigenvalues: (k,) Ritz values theta_j, descending. eigenvectors: (k, D) unit Ritz vectors
    (float64). residuals: (k,) ||A y_j - theta_j y_j||. error_bounds: (k,) eps_j with
    lambda_j in [theta_j - rounding, theta_j + eps_j] (`bounds.ritz_error_bounds`,
    Kato-Temple, plus `rounding`). rounding: the products' rounding error precision * ||A||
    (`operator_precision`), which moves the eigenvalues of the operator as computed by up to
    that much. matvecs: operator applications, including products computed ahead in a block
    that the stop left unused (at most block - 1). converged: the first converge_k bounds are
    <= tol * |theta_1|. restarts: breakdowns (invariant Krylov spaces) that forced a random
    orthogonal restart.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    error_bounds: np.ndarray
    rounding: float
    matvecs: int
    converged: bool
    restarts: int

    @property
    def intervals(self) -> np.ndarray:
        """(k, 2) certified intervals [theta_j - rounding, theta_j + eps_j] of the top
        eigenvalues."""
        theta = self.eigenvalues
        return np.stack([theta - self.rounding, theta + self.error_bounds], axis=1)


def _unit(v: np.ndarray, name: str) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"{name}: start vector must be finite and non-zero")
    return v / norm


def _start_block(dim: int, v0: np.ndarray | None, block: int, rng) -> np.ndarray:
    """The start block: the rows of v0 ((D,) or (j, D), e.g. the previous top eigenvectors,
    each normalised), or `block` random Gaussian vectors."""
    if v0 is None:
        return rng.standard_normal((block, dim))
    v0 = np.asarray(v0, dtype=np.float64)
    if v0.ndim == 1:
        v0 = v0[None]
    if v0.ndim != 2 or v0.shape[1] != dim or v0.shape[0] < 1:
        raise ValueError(f"v0: expected shape ({dim},) or (j, {dim}), got {v0.shape}")
    return np.stack([_unit(row, "v0") for row in v0])


def lanczos_tridiagonals(
    op: Operator, starts: np.ndarray, steps: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(alpha, beta) of at most `steps` Lanczos steps from each row of `starts` (normalised),
    each stopping early at an invariant subspace; len(beta) = len(alpha) - 1. The Krylov spaces
    grow in lockstep, so each step's products are one block product (`apply_rows`). Used by
    stochastic Lanczos quadrature."""
    operator_dim(op)
    krylovs = [
        BlockKrylov(
            partial(apply_rows, op), _unit(np.asarray(v, dtype=np.float64), "v0"), expand_all=True
        )
        for v in np.atleast_2d(starts)
    ]
    while True:
        active = [k for k in krylovs if k.multiplied < steps and k.unmultiplied]
        if not active:
            return [k.tridiagonal() for k in krylovs]
        products = apply_rows(op, np.stack([k.next_vector for k in active]))
        for krylov, product in zip(active, products, strict=True):
            krylov.provide(product)
            krylov.step()


def lanczos_tridiagonal(op: Operator, v0: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """`lanczos_tridiagonals` from one start vector."""
    return lanczos_tridiagonals(op, np.asarray(v0)[None], steps)[0]


def _check_arguments(op, k, tol, max_iter, converge_k, block) -> int:
    dim = operator_dim(op)
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    if k > dim:
        raise ValueError(f"k: asked for {k} eigenpairs of an operator of dimension {dim}")
    if not tol > 0:
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    if not isinstance(converge_k, int | np.integer) or not 1 <= converge_k <= k:
        raise ValueError(f"converge_k: must be an integer in [1, k = {k}], got {converge_k!r}")
    if not isinstance(block, int | np.integer) or not 1 <= block <= dim:
        raise ValueError(f"block: must be an integer in [1, D = {dim}], got {block!r}")
    if int(max_iter) < k:
        raise ValueError(f"max_iter: must be >= k = {k}, got {max_iter}")
    return dim


def lanczos(
    op: Operator,
    k: int,
    *,
    tol: float,
    max_iter: int,
    converge_k: int,
    block: int,
    v0: np.ndarray | None = None,
    seed: int = 0,
) -> LanczosResult:
    """Top-k eigenpairs of a symmetric operator by (block) Lanczos with full reorthogonalisation.

    Starts from the rows of `v0` (warm start: e.g. the previous top eigenvectors, the whole block
    is kept) or from `block` random vectors, and stops when the certified error bounds of the
    first `converge_k` Ritz values are <= tol * |theta_1| (converge_k=1: lambda_1 certified, the
    other k - 1 reported with their bounds; a thick-restart step expands the residual of the
    least converged of them) or after min(max_iter, D) matvecs (a LanczosWarning
    then says it did not converge). A breakdown (invariant Krylov space) before convergence
    restarts from a random vector orthogonal to the basis, with a LanczosWarning. The settings'
    defaults are in `tfbreak.measure.MeasurementSettings` (top_k, lanczos_*).

    The Ritz values theta_j of the Krylov space bound the eigenvalues from below,
    lambda_j in [theta_j, theta_j + eps_j] (`bounds.ritz_error_bounds`). On a diagonal matrix:

    >>> import numpy as np, scipy.sparse.linalg as sla
    >>> A = sla.aslinearoperator(np.diag([5.0, 3.0, 1.0, 0.5, 0.25, 0.1]))
    >>> top = lanczos(A, 2, tol=1e-10, max_iter=6, converge_k=2, block=1, seed=0)
    >>> [round(float(t), 10) for t in top.eigenvalues], bool(top.converged)
    ([5.0, 3.0], True)
    >>> bool(np.all(top.error_bounds <= 1e-10 * 5.0))
    True
    """
    dim = _check_arguments(op, k, tol, max_iter, converge_k, block)
    max_iter = min(int(max_iter), dim)
    precision = operator_precision(op)
    rng = np.random.default_rng(seed)
    # Random start vectors need their Krylov chains grown to be filtered (band Lanczos); a warm
    # start's eigenvectors are already filtered: only the first one's chain grows.
    krylov = BlockKrylov(
        partial(apply_rows, op), _start_block(dim, v0, block, rng), expand_all=v0 is None
    )
    restarts, follow = 0, 0
    while True:
        try:
            krylov.step(follow, ahead=max_iter - krylov.multiplied)
        except KrylovBreakdown:
            restarts += 1
            warnings.warn(
                f"Lanczos: breakdown at step {krylov.multiplied} (invariant Krylov space of the "
                "start vectors); restarting from a random vector orthogonal to it",
                LanczosWarning,
                stacklevel=2,
            )
            krylov.add(rng.standard_normal(dim))
            continue
        theta, s, residuals = krylov.rayleigh_ritz(k + 1)
        rounding = precision * max(abs(theta[0]), abs(theta[-1]))
        bounds = ritz_error_bounds(theta, residuals, k) + rounding
        m = krylov.multiplied
        limit = tol * max(abs(theta[0]), np.finfo(float).tiny)
        converged = m >= k and bool(np.all(bounds[:converge_k] <= limit))
        if converged or m >= max_iter:
            break
        follow = int(np.argmax(bounds[:converge_k]))  # the least converged wanted pair
    if not converged:
        warnings.warn(
            f"Lanczos: max_iter={max_iter} reached with certified bounds "
            f"{bounds[:converge_k].max():.3g} > tol * |theta_1| = {limit:.3g}",
            LanczosWarning,
            stacklevel=2,
        )
    return LanczosResult(
        eigenvalues=theta[:k].copy(),
        eigenvectors=krylov.ritz_vectors(s[:, :k]),
        residuals=residuals[:k].copy(),
        error_bounds=bounds,
        rounding=rounding,
        matvecs=krylov.products,
        converged=converged,
        restarts=restarts,
    )

"""Lanczos with full reorthogonalisation for the top eigenpairs of a symmetric operator.

The recurrence beta_{j} q_{j+1} = A q_j - alpha_j q_j - beta_{j-1} q_{j-1} builds the
tridiagonal T_m = Q_m^T A Q_m (float64 on the host); its eigenpairs (theta, s), from
`_native.tridiagonal_eigh`, give Ritz pairs (theta, Q_m s) with residual
||A y - theta y|| = beta_m |s_m| (Golub & Van Loan, Sec. 10.1). Paper App. C uses this for H.

The operator is anything with `shape` (D, D) and a float64 host `matvec`: a
`tfbreak.curvature.CurvatureOperator` or a `scipy.sparse.linalg.LinearOperator`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tfbreak import _native

Matvec = Callable[[np.ndarray], np.ndarray]


class Operator(Protocol):
    """What the algorithms need of an operator (CurvatureOperator, scipy LinearOperator)."""

    shape: tuple[int, int]

    def matvec(self, v: np.ndarray) -> np.ndarray: ...


def operator_dim(op: Operator) -> int:
    """D of a square operator; ValueError naming `op` otherwise."""
    shape = tuple(getattr(op, "shape", ()))
    if len(shape) != 2 or shape[0] != shape[1] or not callable(getattr(op, "matvec", None)):
        raise ValueError(
            f"op: expected a square operator with shape (D, D) and matvec, got {type(op).__name__}"
        )
    return int(shape[0])


class LanczosWarning(UserWarning):
    """A breakdown forced a restart, or max_iter was reached before the residual tolerance."""


@dataclass(frozen=True)
class LanczosResult:
    """Top-k Ritz pairs of a symmetric operator.

    eigenvalues: (k,) Ritz values, descending. eigenvectors: (k, D) unit Ritz vectors (float64).
    residuals: (k,) ||A y_j - theta_j y_j||, a rigorous bound: some eigenvalue lies within it.
    matvecs: operator applications used. converged: the first converge_k residuals are
    <= tol * |theta_1|.
    restarts: breakdowns (invariant Krylov spaces) that forced a random orthogonal restart.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    matvecs: int
    converged: bool
    restarts: int


class _Basis:
    """Orthonormal Lanczos vectors, stored in a growing float64 array."""

    def __init__(self, dim: int):
        self.data = np.empty((8, dim))
        self.size = 0

    def append(self, q: np.ndarray) -> None:
        if self.size == self.data.shape[0]:
            self.data = np.concatenate([self.data, np.empty_like(self.data)])
        self.data[self.size] = q
        self.size += 1

    @property
    def vectors(self) -> np.ndarray:
        return self.data[: self.size]

    def orthogonalize(self, w: np.ndarray) -> np.ndarray:
        """Two passes of classical Gram-Schmidt against all vectors ("twice is enough")."""
        q = self.vectors
        for _ in range(2):
            w = w - q.T @ (q @ w)
        return w


def _unit(v: np.ndarray, name: str) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"{name}: start vector must be finite and non-zero")
    return v / norm


def _start_vector(dim: int, v0: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """v0 may be one vector (D,) or several (j, D), e.g. the previous top eigenvectors: their
    normalised sum spans all of them in the Krylov space (warm start)."""
    if v0 is None:
        return _unit(rng.standard_normal(dim), "v0")
    v0 = np.asarray(v0, dtype=np.float64)
    if v0.ndim == 1:
        v0 = v0[None]
    if v0.ndim != 2 or v0.shape[1] != dim:
        raise ValueError(f"v0: expected shape ({dim},) or (j, {dim}), got {v0.shape}")
    return _unit(sum(_unit(row, "v0") for row in v0), "v0")


class _Recurrence:
    """The three-term recurrence with full reorthogonalisation, one matvec per `step`."""

    def __init__(self, matvec: Matvec, q0: np.ndarray):
        self.matvec = matvec
        self.dim = q0.shape[0]
        self.basis = _Basis(self.dim)
        self.basis.append(q0)
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self.residual = 0.0  # beta_m = ||r_m||, the norm of the next (unnormalised) vector
        self._r = q0

    def step(self) -> None:
        q = self.basis.vectors[-1]
        w = np.asarray(self.matvec(q), dtype=np.float64)
        if w.shape != (self.dim,):
            raise ValueError(f"matvec: returned shape {w.shape}, expected ({self.dim},)")
        a = float(q @ w)
        w = w - a * q
        if self.beta:
            w = w - self.beta[-1] * self.basis.vectors[-2]
        self._r = self.basis.orthogonalize(w)
        self.alpha.append(a)
        self.residual = float(np.linalg.norm(self._r))

    def broke_down(self) -> bool:
        """beta_m ~ 0: the Krylov space is invariant (or the whole space is spanned)."""
        scale = max(np.abs(self.alpha).max(), max(self.beta, default=0.0), np.finfo(float).tiny)
        return self.residual <= 1e-12 * scale or len(self.alpha) == self.dim

    def advance(self, rng: np.random.Generator | None = None) -> None:
        """Append q_{m+1}; after a breakdown restart from a random vector orthogonal to the basis
        (T decouples: beta_m = 0), which needs `rng`."""
        if self.broke_down():
            if rng is None:
                raise RuntimeError("Lanczos broke down and no restart was requested")
            w = self.basis.orthogonalize(rng.standard_normal(self.dim))
            self.residual = 0.0
            q = w / np.linalg.norm(w)
        else:
            q = self._r / self.residual
        self.beta.append(self.residual)
        self.basis.append(q)

    def tridiagonal(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.alpha), np.array(self.beta)


def lanczos_tridiagonal(op: Operator, v0: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of at most `steps` Lanczos steps from unit v0, stopping early at an
    invariant subspace; len(beta) = len(alpha) - 1. Used by stochastic Lanczos quadrature."""
    operator_dim(op)
    rec = _Recurrence(op.matvec, _unit(np.asarray(v0, dtype=np.float64), "v0"))
    rec.step()
    while len(rec.alpha) < steps and not rec.broke_down():
        rec.advance()
        rec.step()
    return rec.tridiagonal()


def lanczos(
    op: Operator,
    k: int,
    *,
    tol: float,
    max_iter: int,
    converge_k: int,
    v0: np.ndarray | None = None,
    seed: int = 0,
) -> LanczosResult:
    """Top-k eigenpairs of a symmetric operator by Lanczos with full reorthogonalisation.

    Stops when the first `converge_k` Ritz residuals are <= tol * |theta_1| (converge_k=1:
    lambda_1 to tolerance, the other k - 1 reported with their residuals) or after
    min(max_iter, D) matvecs (a LanczosWarning then says it did not converge). A breakdown
    (invariant Krylov space) before convergence restarts from a random vector orthogonal to the
    basis, with a LanczosWarning. `v0` warm-starts from previous eigenvectors. The settings'
    defaults are in `tfbreak.measure.MeasurementSettings` (top_k, lanczos_*).
    """
    dim = operator_dim(op)
    matvec = op.matvec
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    if k > dim:
        raise ValueError(f"k: asked for {k} eigenpairs of an operator of dimension {dim}")
    if not tol > 0:
        raise ValueError(f"tol: must be > 0, got {tol!r}")
    max_iter = int(max_iter)
    if not isinstance(converge_k, int | np.integer) or not 1 <= converge_k <= k:
        raise ValueError(f"converge_k: must be an integer in [1, k = {k}], got {converge_k!r}")
    if max_iter < k:
        raise ValueError(f"max_iter: must be >= k = {k}, got {max_iter}")
    max_iter = min(max_iter, dim)
    rng = np.random.default_rng(seed)

    rec = _Recurrence(matvec, _start_vector(dim, v0, rng))
    tiny = np.finfo(float).tiny
    restarts = 0
    while True:
        rec.step()
        theta, s = _native.tridiagonal_eigh(*rec.tridiagonal())
        residuals = rec.residual * np.abs(s[-1, :k])
        m = len(rec.alpha)
        bound = tol * max(abs(theta[0]), tiny)
        converged = m >= k and bool(np.all(residuals[:converge_k] <= bound))
        if converged or m >= max_iter:
            break
        if rec.broke_down():
            restarts += 1
            warnings.warn(
                f"Lanczos: breakdown at step {m} (invariant Krylov space of v0); restarting "
                "from a random vector orthogonal to it",
                LanczosWarning,
                stacklevel=2,
            )
        rec.advance(rng)
    if not converged:
        warnings.warn(
            f"Lanczos: max_iter={max_iter} reached with residuals "
            f"{residuals[:converge_k].max():.3g} > "
            f"tol * |theta_1| = {tol * abs(theta[0]):.3g}",
            LanczosWarning,
            stacklevel=2,
        )
    vectors = s[:, :k].T @ rec.basis.vectors[:m]
    return LanczosResult(
        eigenvalues=theta[:k].copy(),
        eigenvectors=vectors,
        residuals=residuals,
        matvecs=m,
        converged=converged,
        restarts=restarts,
    )

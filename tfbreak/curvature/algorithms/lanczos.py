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

Memory (`basis`, `KrylovBasis`): the basis is allocated once for max_iter + block vectors and
stored in the precision of the operator's products ("host": float32 for a float32 model, which
loses nothing the products had not lost; inner products and updates in float64), or in float64
("host_float64": twice the memory), or in a tf.Variable on the accelerator ("device": on a
CPU-only machine that is host memory too). Host memory grows with the vectors actually made.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Literal, Protocol

import numpy as np

from tfbreak.curvature.algorithms.bounds import ritz_error_bounds
from tfbreak.curvature.algorithms.krylov import BlockKrylov, HostBasis, KrylovBreakdown
from tfbreak.curvature.operators.base import rounding_precision

KrylovBasis = Literal["host", "host_float64", "device"]
"""Where the Lanczos / SLQ basis is stored: host memory in the precision of the operator's
products (float32 for a float32 model), host memory in float64, or the accelerator (a
tf.Variable in the products' precision: the operator must have `apply_block`)."""


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


def product_dtype(op: Operator) -> np.dtype:
    """The host dtype of op's products: `op.dtype` when it is float32 (a float32 model's
    Hessian), else float64 (scipy and the other operators)."""
    dtype = np.dtype(getattr(op, "dtype", np.float64))
    return dtype if dtype == np.float32 else np.dtype(np.float64)


def _checked(products: np.ndarray, vectors, name: str) -> np.ndarray:
    if products.shape != tuple(vectors.shape):
        raise ValueError(f"{name}: returned shape {products.shape}, expected {vectors.shape}")
    return products


def apply_rows(op: Operator, vectors: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """op v for each row v of `vectors` (b, D) as host rows of `product_dtype(op)`: in one call
    when op has `matvec_rows` (a `CurvatureOperator`, in its own precision: no float64 copy) or,
    for several rows, `matvec_block` (one pass over the Hessian's sample); else one matvec per
    row. `out`: rows of that dtype (a Krylov basis' free rows) that an operator with
    `matvec_rows_into` (the Hessian) writes the products into, holding no other copy of them;
    other operators ignore it."""
    dtype = product_dtype(op)
    into = getattr(op, "matvec_rows_into", None)
    if out is not None and into is not None and out.dtype == getattr(op, "dtype", None):
        return _checked(into(vectors, out), vectors, "matvec_rows_into")
    rows = getattr(op, "matvec_rows", None)
    if rows is not None:
        return _checked(np.asarray(rows(vectors), dtype=dtype), vectors, "matvec_rows")
    block = getattr(op, "matvec_block", None)
    if block is not None and len(vectors) > 1:
        return _checked(np.asarray(block(vectors), dtype=dtype), vectors, "matvec_block")
    products = [np.asarray(op.matvec(v), dtype=dtype) for v in vectors]
    for w in products:
        if w.shape != vectors.shape[1:]:
            raise ValueError(f"matvec: returned shape {w.shape}, expected {vectors.shape[1:]}")
    return np.stack(products)


def krylov_storage(op: Operator, basis: str, capacity: int):
    """(an empty basis for `capacity` vectors, the function multiplying its rows) for
    `basis`, a `KrylovBasis` (see the module docstring)."""
    dim = operator_dim(op)
    capacity = min(int(capacity), dim)
    if basis == "device":
        if not callable(getattr(op, "apply_block", None)):
            raise ValueError(
                "basis: 'device' needs an operator with apply_block (e.g. a HessianOperator), "
                f"got {type(op).__name__}"
            )
        from tfbreak.curvature.algorithms.device_basis import DeviceBasis

        return DeviceBasis(dim, capacity, product_dtype(op)), op.apply_block
    dtypes = {"host": product_dtype(op), "host_float64": np.float64}
    if basis not in dtypes:
        raise ValueError(f"basis: expected one of {(*dtypes, 'device')}, got {basis!r}")
    return HostBasis(dim, capacity, dtypes[basis]), partial(apply_rows, op)


class LanczosWarning(UserWarning):
    """A breakdown forced a restart, or max_iter was reached before the certified tolerance."""


@dataclass(frozen=True)
class LanczosResult:
    """Top-k Ritz pairs of a symmetric operator with certified intervals.

    eigenvalues: (k,) Ritz values theta_j, descending. eigenvectors: (k, D) unit Ritz vectors
    (host arrays of the basis' dtype: float32 for a float32 model's Hessian). residuals: (k,)
    ||A y_j - theta_j y_j||. error_bounds: (k,) eps_j with lambda_j in
    [theta_j - rounding, theta_j + eps_j] (`bounds.ritz_error_bounds`, Kato-Temple, plus
    `rounding`). rounding: the products' rounding error precision * ||A||
    (`operator_precision`), which moves the eigenvalues of the operator as computed by up to
    that much, plus that of the stored basis (`krylov.HostBasis.precision` * ||A||). matvecs:
    operator applications, including products computed ahead in a block that the stop left
    unused (at most block - 1). converged: the first converge_k bounds are
    <= tol * |theta_1|. restarts: breakdowns (invariant Krylov spaces) that forced a random
    orthogonal restart. thick_restarts: compressions of a full basis (`basis_vectors`).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    error_bounds: np.ndarray
    rounding: float
    matvecs: int
    converged: bool
    restarts: int
    thick_restarts: int = 0

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


def _start_block(
    dim: int, v0: np.ndarray | None, block: int, rng
) -> tuple[int, Iterator[np.ndarray]]:
    """(j, the start vectors): the rows of v0 ((D,) or (j, D), e.g. the previous top
    eigenvectors, each normalised), or `block` random Gaussian vectors; made one at a time, in
    float64, as the basis takes them."""
    if v0 is None:
        return block, (rng.standard_normal(dim) for _ in range(block))
    v0 = np.asarray(v0)
    if v0.ndim == 1:
        v0 = v0[None]
    if v0.ndim != 2 or v0.shape[1] != dim or v0.shape[0] < 1:
        raise ValueError(f"v0: expected shape ({dim},) or (j, {dim}), got {v0.shape}")
    return len(v0), (_unit(np.asarray(row, dtype=np.float64), "v0") for row in v0)


def lanczos_tridiagonals(
    op: Operator, starts: Iterable[np.ndarray], steps: int, *, basis: KrylovBasis
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(alpha, beta) of at most `steps` Lanczos steps from each start vector (normalised; the
    rows of an array, or made one at a time by an iterator), each stopping early at an
    invariant subspace; len(beta) = len(alpha) - 1. The Krylov spaces grow in lockstep, so each
    step's products are one block product (`apply_rows`). Used by stochastic Lanczos quadrature.

    Memory: each start keeps its full basis (steps + 1 vectors, stored as `basis` says), since
    every step is reorthogonalised against it: the quadrature nodes are then the Ritz values of
    an orthonormal basis, without the spurious copies of converged ones plain Lanczos makes."""
    dim = operator_dim(op)
    krylovs = []
    for v in starts:
        storage, multiply = krylov_storage(op, basis, steps + 1)
        start = _unit(np.asarray(v, dtype=np.float64), "v0")
        krylovs.append(BlockKrylov(multiply, [start], storage, expand_all=True))
    if not krylovs:
        raise ValueError(f"starts: need at least one start vector of length {dim}")
    while True:
        active = [k for k in krylovs if k.multiplied < steps and k.unmultiplied]
        if not active:
            return [k.tridiagonal() for k in krylovs]
        vectors = active[0].basis.stack([k.next_vector for k in active])
        products = active[0].basis.unstack(active[0].multiply(vectors))
        for krylov, product in zip(active, products, strict=True):
            krylov.provide(product)
            krylov.step()


def lanczos_tridiagonal(
    op: Operator, v0: np.ndarray, steps: int, *, basis: KrylovBasis
) -> tuple[np.ndarray, np.ndarray]:
    """`lanczos_tridiagonals` from one start vector."""
    return lanczos_tridiagonals(op, [v0], steps, basis=basis)[0]


def restart_keep(k: int, capacity: int, pending: int) -> int:
    """Ritz vectors a thick restart keeps in a basis of `capacity` vectors with `pending`
    unmultiplied ones: the k wanted (their bounds are reported), the next one (its Ritz value
    theta_{k+1} + r_{k+1} is the far end of the gap of Kato-Temple's bound on theta_k; a restart
    that dropped it would lose the estimate of lambda_{k+1} and could claim a gap that is not
    there) and, up to half of the rest, the following ones, which keep the directions of the
    next eigenvalues (Wu & Simon 2000 keep about half the basis; ARPACK keeps k). Needs
    capacity >= k + pending + 2 (one new vector after each restart)."""
    return max(k + 1, min((capacity - pending) // 2, capacity - pending - 1))


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
    basis: KrylovBasis,
    v0: np.ndarray | None = None,
    seed: int = 0,
    basis_vectors: int | None = None,
) -> LanczosResult:
    """Top-k eigenpairs of a symmetric operator by (block) Lanczos with full reorthogonalisation.

    Starts from the rows of `v0` (warm start: e.g. the previous top eigenvectors, the whole block
    is kept) or from `block` random vectors, and stops when the certified error bounds of the
    first `converge_k` Ritz values are <= tol * |theta_1| (converge_k=1: lambda_1 certified, the
    other k - 1 reported with their bounds; a thick-restart step expands the residual of the
    least converged of them) or after min(max_iter, D) matvecs (a LanczosWarning
    then says it did not converge). A breakdown (invariant Krylov space) before convergence
    restarts from a random vector orthogonal to the basis, with a LanczosWarning. `basis`: where
    the Krylov basis is stored (`KrylovBasis`; its rounding is added to `rounding`).
    `basis_vectors`: the most vectors the basis holds (None: max_iter + the start vectors, no
    restart); when it is full before convergence, a thick restart (`restart_keep`) compresses
    it to Ritz vectors and Lanczos goes on (`thick_restarts` counts them; max_iter still
    bounds the products). The settings' defaults are in `tfbreak.measure.MeasurementSettings`
    (top_k, lanczos_*).

    The Ritz values theta_j of the Krylov space bound the eigenvalues from below,
    lambda_j in [theta_j, theta_j + eps_j] (`bounds.ritz_error_bounds`). On a diagonal matrix:

    >>> import numpy as np, scipy.sparse.linalg as sla
    >>> A = sla.aslinearoperator(np.diag([5.0, 3.0, 1.0, 0.5, 0.25, 0.1]))
    >>> top = lanczos(A, 2, tol=1e-10, max_iter=6, converge_k=2, block=1, seed=0, basis="host")
    >>> [round(float(t), 10) for t in top.eigenvalues], bool(top.converged)
    ([5.0, 3.0], True)
    >>> bool(np.all(top.error_bounds <= 1e-10 * 5.0))
    True

    With a basis of at most 5 vectors, lambda_1 = 16 of a 200 x 200 matrix is found through
    thick restarts, its certified interval holding it:

    >>> A = sla.aslinearoperator(np.diag(np.linspace(0.0, 2.0, 200) ** 4))
    >>> top = lanczos(A, 1, tol=1e-8, max_iter=200, converge_k=1, block=1, seed=0, basis="host",
    ...               basis_vectors=5)
    >>> low, high = top.intervals[0]
    >>> bool(top.converged), top.thick_restarts > 3, bool(low <= 16.0 <= high)
    (True, True, True)
    """
    dim = _check_arguments(op, k, tol, max_iter, converge_k, block)
    max_iter = min(int(max_iter), dim)
    precision = operator_precision(op)
    rng = np.random.default_rng(seed)
    count, starts = _start_block(dim, v0, block, rng)
    capacity = max_iter + count
    if basis_vectors is not None:
        least = k + count + 2
        if not isinstance(basis_vectors, int | np.integer) or basis_vectors < least:
            raise ValueError(
                f"basis_vectors: must be an integer >= k + start vectors + 2 = {least} (the "
                f"k + 1 Ritz vectors a restart keeps, the start block's pending vectors and one "
                f"new vector), got {basis_vectors!r}"
            )
        capacity = min(capacity, int(basis_vectors))
    storage, multiply = krylov_storage(op, basis, capacity)
    keep = restart_keep(k, capacity, count)
    # Random start vectors need their Krylov chains grown to be filtered (band Lanczos); a warm
    # start's eigenvectors are already filtered: only the first one's chain grows.
    krylov = BlockKrylov(
        multiply, starts, storage, expand_all=v0 is None, in_place=basis != "device"
    )
    restarts, follow = 0, 0
    while True:
        if krylov.full:
            krylov.restart(keep)
        try:
            krylov.step(follow, ahead=max_iter - krylov.steps)
        except KrylovBreakdown:
            restarts += 1
            warnings.warn(
                f"Lanczos: breakdown at step {krylov.steps} (invariant Krylov space of the "
                "start vectors); restarting from a random vector orthogonal to it",
                LanczosWarning,
                stacklevel=2,
            )
            krylov.add(rng.standard_normal(dim))
            continue
        theta, s, residuals = krylov.rayleigh_ritz(k + 1)
        residuals = residuals + krylov.discarded  # what restarts left out of the coefficients
        rounding = (precision + storage.precision) * max(abs(theta[0]), abs(theta[-1]))
        bounds = ritz_error_bounds(theta, residuals, k) + rounding
        limit = tol * max(abs(theta[0]), np.finfo(float).tiny)
        converged = krylov.multiplied >= k and bool(np.all(bounds[:converge_k] <= limit))
        if converged or krylov.steps >= max_iter:
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
        thick_restarts=krylov.restarts,
    )

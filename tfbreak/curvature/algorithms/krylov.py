"""Block Krylov subspaces of a symmetric operator, one operator application at a time.

Band Lanczos (Ruhe 1979): from an orthonormal start block V = [v_1, ..., v_b] the basis grows by
one vector per product, q_{i+b} ~ A q_i orthogonalised against every basis vector so far (two
passes of classical Gram-Schmidt: full reorthogonalisation), so after m products the multiplied
vectors span the block Krylov space K(A, V) up to degree ~m/b. With b = 1 it is the Lanczos
three-term recurrence (Golub & Van Loan, Sec. 10.1). A start block containing every direction of
a cluster of top eigenvalues (a multiple or near-multiple eigenvalue) resolves the cluster; a
single start vector sees only one direction of it.

The orthogonalisation coefficients are kept: A Q_m = Q' C with Q' the whole basis (multiplied and
pending vectors) and C its (m' x m) coefficient matrix, so the Rayleigh-Ritz matrix is
T_m = Q_m^T A Q_m (the top m x m block of C, symmetrised) and a Ritz pair (theta, Q_m s) has the
exact residual ||A Q_m s - theta Q_m s|| = ||C s - theta [s; 0]|| without another product.

The operator is applied to rows: `multiply` maps a (b, D) array to the (b, D) products, so the
products of the basis vectors the next steps multiply as they are, whatever those products show
(every pending vector of band Lanczos, the start vectors of a thick restart), are computed
ahead in one call (the Hessian: one pass over its sample for several vectors). The steps, and
so the basis and the Ritz pairs, are those of one product at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Multiply = Callable[[np.ndarray], np.ndarray]
"""The operator applied to each row of a (b, D) host array: the (b, D) products."""


class KrylovBreakdown(RuntimeError):
    """Every basis vector has been multiplied: the basis spans an invariant subspace."""


class _Basis:
    """Orthonormal vectors, stored in a growing float64 array."""

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

    def orthogonalize(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(w - Q Q^T w, Q^T w) by two passes of classical Gram-Schmidt ("twice is enough");
        the coefficients of both passes are summed."""
        q = self.vectors
        coeffs = np.zeros(self.size)
        for _ in range(2):
            c = q @ w
            w = w - q.T @ c
            coeffs += c
        return w, coeffs


class BlockKrylov:
    """The block Krylov basis of `matvec` from the rows of `start` (float64, (b, D)).

    Start rows that are (numerically) dependent on earlier ones are dropped. Every product,
    orthogonalised, joins the basis; `step()` multiplies one basis vector that has not been
    multiplied yet:
      - `expand_all=True` (band Lanczos): the oldest one, so every start vector's Krylov chain
        grows (random start vectors must be filtered by the polynomial to resolve a cluster);
      - `expand_all=False` (thick-restart / augmented Lanczos, Wu & Simon 2000): the start
        vectors once, then the direction of one Ritz vector's residual (`step(follow=j)`)
        within the unmultiplied vectors, so the previous eigenvectors stay in the space without
        costing a product per step (one start vector: plain Lanczos either way).
    `rayleigh_ritz(count)` gives Ritz values, vectors and residual norms of the span of the
    multiplied vectors. `products` counts the operator's applications, including products
    computed ahead that no step used.
    """

    def __init__(self, multiply: Multiply, start: np.ndarray, *, expand_all: bool):
        start = np.atleast_2d(np.asarray(start, dtype=np.float64))
        self.multiply = multiply
        self.dim = start.shape[1]
        self.expand_all = expand_all
        self.products = 0
        self._ahead: dict[int, np.ndarray] = {}  # basis index -> its product, computed ahead
        self.basis = _Basis(self.dim)
        self.unmultiplied: list[int] = []  # basis indices, oldest first
        self.columns: list[int] = []  # basis index of each multiplied vector, in order
        self._coeffs = np.zeros((8, 8))  # column j: Q'^T A q_{columns[j]}
        for v in start:
            self.add(v)
        self._start_left = len(self.unmultiplied)
        if not self.unmultiplied:
            raise ValueError("start: the start vectors are zero or not finite")

    @property
    def multiplied(self) -> int:
        return len(self.columns)

    def add(self, v: np.ndarray) -> bool:
        """Orthogonalise v against the basis and append it (not multiplied yet) unless it lies
        in the basis' span (relative norm <= 1e-10); returns whether it was added."""
        norm = float(np.linalg.norm(v))
        if not np.isfinite(norm) or norm == 0.0 or self.basis.size == self.dim:
            return False
        w, _ = self.basis.orthogonalize(v / norm)
        rest = float(np.linalg.norm(w))
        if rest <= 1e-10:
            return False
        self.basis.append(w / rest)
        self.unmultiplied.append(self.basis.size - 1)
        return True

    def _grow_coeffs(self) -> None:
        rows, cols = self._coeffs.shape
        if self.basis.size + 1 > rows or self.multiplied + 1 > cols:
            grown = np.zeros((2 * rows, 2 * cols))
            grown[:rows, :cols] = self._coeffs
            self._coeffs = grown

    def _rotate_to_residual(self, follow: int) -> None:
        """Rotate the unmultiplied vectors so that the first is the direction of the residual of
        Ritz vector `follow` (its only components outside the multiplied span); the coefficient
        rows rotate with them, so A Q_m = Q' C still holds."""
        u = self.unmultiplied
        _, s, _ = self.rayleigh_ritz(0)
        rho = self._coefficients()[u] @ s[:, min(follow, s.shape[1] - 1)]
        norm = float(np.linalg.norm(rho))
        if len(u) < 2 or norm == 0.0:
            return
        # Householder reflection G (symmetric, orthogonal) with G e_1 = rho / ||rho||.
        h = rho / norm
        h[0] -= 1.0
        hh = float(h @ h)
        if hh == 0.0:
            return
        g = np.eye(len(u)) - 2.0 * np.outer(h, h) / hh
        self.basis.data[u] = g @ self.basis.data[u]
        self._coeffs[u, : self.multiplied] = g @ self._coeffs[u, : self.multiplied]

    def _multiply(self, indices: list[int]) -> None:
        """The products of basis vectors `indices` in one call, kept until their steps."""
        vectors = self.basis.vectors[indices]
        products = np.asarray(self.multiply(vectors), dtype=np.float64)
        if products.shape != vectors.shape:
            raise ValueError(f"multiply: returned shape {products.shape}, expected {vectors.shape}")
        self.products += len(indices)
        self._ahead.update(zip(indices, products, strict=True))

    @property
    def next_vector(self) -> np.ndarray:
        """The basis vector the next step multiplies (band Lanczos: known before the step)."""
        if not self.expand_all:
            raise ValueError("next_vector: a thick-restart step rotates its vector first")
        if not self.unmultiplied:
            raise KrylovBreakdown("every basis vector has been multiplied")
        return self.basis.vectors[self.unmultiplied[0]]

    def provide(self, product: np.ndarray) -> None:
        """The product A q of `next_vector`, computed by the caller (e.g. in one call with other
        Krylov spaces' next vectors); the next step uses it."""
        product = np.asarray(product, dtype=np.float64)
        if product.shape != (self.dim,):
            raise ValueError(f"product: shape {product.shape}, expected ({self.dim},)")
        self._ahead[self.unmultiplied[0]] = product
        self.products += 1

    def step(self, follow: int = 0, ahead: int = 1) -> None:
        """Multiply one basis vector (see the class docstring; `follow`: the Ritz pair whose
        residual a thick-restart step expands; `ahead`: how many vectors, this one included, to
        multiply in one call when their products are already determined);
        KrylovBreakdown when every basis vector has been multiplied (the basis spans an
        invariant subspace)."""
        if not self.unmultiplied:
            raise KrylovBreakdown("every basis vector has been multiplied")
        # Vectors the coming steps multiply unchanged: no rotation touches them (the start
        # vectors of a thick restart are all multiplied before its first rotation).
        settled = len(self.unmultiplied) if self.expand_all else self._start_left
        if self._start_left:
            self._start_left -= 1
        elif not self.expand_all:
            self._rotate_to_residual(follow)
        if self.unmultiplied[0] not in self._ahead:
            self._multiply(self.unmultiplied[: max(1, min(int(ahead), settled))])
        i = self.unmultiplied.pop(0)
        w = self._ahead.pop(i)
        self._grow_coeffs()
        rest, coeffs = self.basis.orthogonalize(w)
        j = self.multiplied
        self._coeffs[: coeffs.size, j] = coeffs
        self.columns.append(i)
        scale = max(float(np.linalg.norm(w)), float(np.abs(coeffs).max(initial=0.0)))
        nu = float(np.linalg.norm(rest))
        if nu > 1e-12 * max(scale, np.finfo(float).tiny) and self.basis.size < self.dim:
            self.basis.append(rest / nu)
            self._coeffs[self.basis.size - 1, j] = nu
            self.unmultiplied.append(self.basis.size - 1)

    def _coefficients(self) -> np.ndarray:
        """C (m' x m): A Q_m = Q' C, Q' the whole basis, Q_m the multiplied vectors."""
        return self._coeffs[: self.basis.size, : self.multiplied]

    def projected(self) -> np.ndarray:
        """T_m = Q_m^T A Q_m, symmetrised (m x m)."""
        t = self._coefficients()[self.columns]
        return 0.5 * (t + t.T)

    def rayleigh_ritz(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(theta, s, residuals): all m Ritz values, descending; the coefficient vectors
        (m x m, column j for theta_j); the residual norms ||A y_j - theta_j y_j|| of the first
        min(count, m) Ritz pairs, y_j = Q_m s_j."""
        values, vectors = np.linalg.eigh(self.projected())
        theta, s = values[::-1], vectors[:, ::-1]
        c = min(int(count), theta.size)
        product = self._coefficients() @ s[:, :c]
        product[self.columns] -= s[:, :c] * theta[:c]
        return theta, s, np.linalg.norm(product, axis=0)

    def ritz_vectors(self, s: np.ndarray) -> np.ndarray:
        """Q_m s for each column of s: (columns, D) float64 vectors."""
        return s.T @ self.basis.vectors[self.columns]

    def tridiagonal(self) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, beta) of T_m for a single start vector (b = 1, the basis vectors multiplied
        in order): its diagonal and its sub-diagonal, len(beta) = m - 1."""
        t = self._coefficients()[self.columns]
        return np.diag(t).copy(), np.diag(t, -1).copy()

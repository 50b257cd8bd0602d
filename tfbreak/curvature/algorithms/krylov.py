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

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from tfbreak.curvature.parameters import aligned_rows

Multiply = Callable[[Any], Any]
"""The operator applied to each row of a (b, D) array of basis vectors (host rows for a
`HostBasis`, a tensor for a `DeviceBasis`): the (b, D) products, in the operator's precision."""

CHUNK_ELEMENTS = 1 << 17
"""Float64 elements of the temporaries of one column chunk (1 MiB): basis operations never hold
a float64 copy of a whole vector or of the basis. Small enough to stay in cache (with 4-8 MiB
chunks the orthogonalisation ran 5-10x slower on 2 loaded cores, BLAS threads contending)."""


class KrylovBreakdown(RuntimeError):
    """Every basis vector has been multiplied: the basis spans an invariant subspace."""


def column_chunks(dim: int, rows: int) -> Iterator[slice]:
    """Column slices of a (rows, dim) array whose float64 copies hold <= CHUNK_ELEMENTS."""
    width = max(1024, CHUNK_ELEMENTS // max(int(rows), 1))
    for a in range(0, dim, width):
        yield slice(a, min(a + width, dim))


def _same_array(a: Any, b: np.ndarray) -> bool:
    """a is a view of the same memory, shape and layout as b."""
    return (
        isinstance(a, np.ndarray)
        and a.dtype == b.dtype
        and a.shape == b.shape
        and a.strides == b.strides
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def dot64(a: np.ndarray, b: np.ndarray) -> float:
    """<a, b> of two host vectors accumulated in float64, chunk by chunk (no float64 copies)."""
    return float(sum(_f64(a[c]) @ _f64(b[c]) for c in column_chunks(a.shape[0], 1)))


def unit_roundoff(dtype) -> float:
    """u = eps / 2: a number rounded to `dtype` is within relative u of itself."""
    return 0.5 * float(np.finfo(dtype).eps)


class HostBasis:
    """Orthonormal vectors stored in one (capacity, D) host array of `dtype` (float32: half the
    memory of float64), allocated once: no copy as it fills, and only the rows written so far
    occupy memory (the operating system maps the pages of a fresh allocation on first write).
    Inner products and updates are computed in float64, one column chunk at a time. Each row is
    aligned (`aligned_rows`), so an operator can multiply it without copying it.

    Rounding the vectors to float32 moves each by at most u = 2^-24 (`unit_roundoff`): with m
    vectors, Q^T Q = I + G with ||G|| <= (m + 1) u and A Q_m = Q' C up to ~3 u ||A|| per column,
    which moves the Ritz values and residuals by at most `precision` * ||A||."""

    def __init__(self, dim: int, capacity: int, dtype):
        self.dtype = np.dtype(dtype)
        self.dim = int(dim)
        self.data = aligned_rows(int(capacity), self.dim, self.dtype)
        self.size = 0
        self.made = 0  # vectors stored since the start, rounded each: appended or compressed

    @property
    def precision(self) -> float:
        """(made + 4) u: the relative error the stored basis adds to Ritz values and residuals
        (non-orthogonality (made + 1) u, made: every vector stored, those a thick restart
        rewrites included; plus the 3 u of rounding each orthogonalised product)."""
        return (self.made + 4) * unit_roundoff(self.dtype)

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        """The basis vectors `indices` as rows (a view when they are consecutive)."""
        i = list(indices)
        if i == list(range(i[0], i[0] + len(i))):
            return self.data[i[0] : i[0] + len(i)]
        return self.data[i]

    @staticmethod
    def stack(rows: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(rows)

    @staticmethod
    def unstack(products: np.ndarray) -> list[np.ndarray]:
        return list(products)

    def free_rows(self, count: int) -> np.ndarray | None:
        """The next `count` free rows (a view), where an operator can write the products that
        the next steps take (`work` then uses them in place), or None when fewer are free."""
        if self.size + int(count) > self.data.shape[0]:
            return None
        return self.data[self.size : self.size + int(count)]

    def work(self, w: Any) -> np.ndarray:
        """A product as a writable array of the basis' dtype that `orthogonalize` and `append`
        change in place: the next free row, where the vector it leaves is stored (a product may
        be read-only: an operator's own memory; one already written there is used as it is),
        or a copy when the basis is full."""
        if self.size == self.data.shape[0]:
            return np.array(w, dtype=self.dtype)
        row = self.data[self.size]
        if _same_array(w, row):
            return row
        for s in column_chunks(self.dim, 1):
            row[s] = w[s]
        return row

    @staticmethod
    def work64(v: np.ndarray) -> np.ndarray:
        """A float64 host vector (a start vector), orthogonalised in float64."""
        return np.asarray(v, dtype=np.float64)

    def norm(self, w: np.ndarray) -> float:
        """||w||, accumulated in float64."""
        return float(np.sqrt(dot64(w, w)))

    def orthogonalize(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(w - Q Q^T w, Q^T w), computed in place in w (a writable float array of length D) by
        two passes of classical Gram-Schmidt ("twice is enough") in float64; the coefficients
        of both passes are summed."""
        coeffs = np.zeros(self.size)
        if self.size == 0:
            return w, coeffs
        q = self.data[: self.size]
        chunks = list(column_chunks(self.dim, self.size))
        for _ in range(2):
            c = sum(_f64(q[:, s]) @ _f64(w[s]) for s in chunks)
            for s in chunks:
                w[s] -= c @ _f64(q[:, s])
            coeffs += c
        return w, coeffs

    def append(self, w: np.ndarray, scale: float) -> None:
        """Store w / scale as the next basis vector (rounded to the basis' dtype); w may be the
        row `work` gave."""
        if self.size == self.data.shape[0]:
            raise RuntimeError(f"Krylov basis: all {self.size} rows are in use")
        row = self.data[self.size]
        for s in column_chunks(self.dim, 1):
            row[s] = _f64(w[s]) / scale
        self.size += 1
        self.made += 1

    def rotate(self, indices: Sequence[int], g: np.ndarray) -> None:
        """Replace the basis vectors `indices` by g @ them (g orthogonal), in float64."""
        for s in column_chunks(self.dim, len(indices)):
            self.data[indices, s] = g @ _f64(self.data[indices, s])

    def compress(self, s: np.ndarray, multiplied: Sequence[int], pending: Sequence[int]) -> None:
        """Thick restart in place: the basis becomes [Q_m s, P] (Q_m: the vectors `multiplied`,
        s: m x keep with orthonormal columns; P: the vectors `pending`, unchanged), computed
        one column chunk at a time in float64 (no copy of a vector)."""
        keep, rows = s.shape[1], list(multiplied)
        for c in column_chunks(self.dim, len(rows)):
            y = s.T @ _f64(self.data[rows, c])
            p = self.data[list(pending), c]
            self.data[:keep, c] = y
            self.data[keep : keep + len(pending), c] = p
        self.size = keep + len(pending)
        self.made += keep

    def combine(self, s: np.ndarray, indices: Sequence[int]) -> np.ndarray:
        """sum_i s[i, j] q_{indices[i]} for each column j of s: (columns, D) of the basis'
        dtype, accumulated in float64."""
        out = np.empty((s.shape[1], self.dim), self.dtype)
        for c in column_chunks(self.dim, len(indices)):
            out[:, c] = s.T @ _f64(self.data[indices, c])
        return out


class BlockKrylov:
    """The block Krylov basis of `multiply` from the start vectors (float64 host vectors of
    length D), stored in `basis` (a `HostBasis`, or a `device_basis.DeviceBasis`) with room for
    every vector the run can make (the products it may take plus the start vectors), or fewer:
    when it is `full`, `restart` compresses it to some Ritz vectors (thick restart).

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
    computed ahead that no step used; `steps` the vectors multiplied (restarts included).

    Memory: the basis (at most its capacity of vectors), the products computed ahead (at most
    the pending vectors, in the operator's precision; each is orthogonalised in place) and
    the (capacity x capacity) float64 coefficients. `in_place` (a `HostBasis`): `multiply` is
    called as `multiply(vectors, out=rows)` with the basis' free rows when there are enough
    (`HostBasis.free_rows`), for an operator that writes the products there (`apply_rows`):
    each step then orthogonalises its product in the row that stores it, with no other copy.
    """

    def __init__(
        self,
        multiply: Multiply,
        start: Iterable[np.ndarray],
        basis,
        *,
        expand_all: bool,
        in_place: bool = False,
    ):
        self.multiply = multiply
        self.in_place = in_place
        self.basis = basis
        self.dim = basis.dim
        self.expand_all = expand_all
        self.products = 0
        self.steps = 0  # vectors multiplied, before and after thick restarts
        self.restarts = 0
        self.discarded = 0.0  # ||A Y - [Y, P] C'|| a thick restart leaves out (rounding of C)
        self._ahead: dict[int, Any] = {}  # basis index -> its product, computed ahead
        self.unmultiplied: list[int] = []  # basis indices, oldest first
        self.columns: list[int] = []  # basis index of each multiplied vector, in order
        capacity = basis.data.shape[0]
        self._coeffs = np.zeros((capacity, capacity))  # column j: Q'^T A q_{columns[j]}
        for v in start:
            self.add(v)
        self._start_left = len(self.unmultiplied)
        if not self.unmultiplied:
            raise ValueError("start: the start vectors are zero or not finite")

    @property
    def multiplied(self) -> int:
        return len(self.columns)

    def add(self, v: np.ndarray) -> bool:
        """Orthogonalise v (a host vector) against the basis and append it (not multiplied yet)
        unless it lies in the basis' span (relative norm <= 1e-10); returns whether it was
        added. Computed in float64 (start vectors: before the basis holds much)."""
        v = np.asarray(v, dtype=np.float64)
        norm = float(np.linalg.norm(v))
        if not np.isfinite(norm) or norm == 0.0 or self.basis.size == self.dim:
            return False
        w, _ = self.basis.orthogonalize(self.basis.work64(v / norm))
        rest = self.basis.norm(w)
        if rest <= 1e-10:
            return False
        self.basis.append(w, rest)
        self.unmultiplied.append(self.basis.size - 1)
        return True

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
        self.basis.rotate(u, g)
        self._coeffs[u, : self.multiplied] = g @ self._coeffs[u, : self.multiplied]

    def _multiply(self, indices: list[int]) -> None:
        """The products of basis vectors `indices` in one call, kept until their steps."""
        vectors = self.basis.rows(indices)
        out = self.basis.free_rows(len(indices)) if self.in_place else None
        products = self.multiply(vectors) if out is None else self.multiply(vectors, out=out)
        if tuple(products.shape) != tuple(vectors.shape):
            raise ValueError(
                f"multiply: returned shape {tuple(products.shape)}, expected {tuple(vectors.shape)}"
            )
        self.products += len(indices)
        self._ahead.update(zip(indices, self.basis.unstack(products), strict=True))

    @property
    def next_vector(self):
        """The basis vector the next step multiplies (band Lanczos: known before the step)."""
        if not self.expand_all:
            raise ValueError("next_vector: a thick-restart step rotates its vector first")
        if not self.unmultiplied:
            raise KrylovBreakdown("every basis vector has been multiplied")
        return self.basis.rows(self.unmultiplied[:1])[0]

    def provide(self, product) -> None:
        """The product A q of `next_vector`, computed by the caller (e.g. in one call with other
        Krylov spaces' next vectors); the next step uses it."""
        if tuple(product.shape) != (self.dim,):
            raise ValueError(f"product: shape {tuple(product.shape)}, expected ({self.dim},)")
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
        self.steps += 1
        w = self.basis.work(self._ahead.pop(i))
        norm = self.basis.norm(w)
        w, coeffs = self.basis.orthogonalize(w)  # the rest, w - Q Q^T w
        j = self.multiplied
        self._coeffs[: coeffs.size, j] = coeffs
        self.columns.append(i)
        scale = max(norm, float(np.abs(coeffs).max(initial=0.0)))
        nu = self.basis.norm(w)
        if nu > 1e-12 * max(scale, np.finfo(float).tiny) and self.basis.size < self.dim:
            self.basis.append(w, nu)
            self._coeffs[self.basis.size - 1, j] = nu
            self.unmultiplied.append(self.basis.size - 1)

    @property
    def full(self) -> bool:
        """No free row is left for the vector the next step makes (and the basis does not
        span the whole space): `restart` makes room."""
        return self.basis.size == self.basis.data.shape[0] < self.dim

    def restart(self, keep: int) -> None:
        """Thick restart (Wu & Simon 2000; Stathopoulos, Saad & Wu 1998): the multiplied
        vectors Q_m become the Ritz vectors Y = Q_m S of the `keep` largest Ritz values, the
        unmultiplied vectors P stay, and the basis [Y, P] (keep + |P| vectors) continues with
        full reorthogonalisation. From A Q_m = Q' C: A Y = Q' C S, i.e. Y^T A Y = S^T C_m S
        (= Theta, C_m the rows of Q_m) and P^T A Y = C_P S, so A Y = [Y, P] C' with
        C' = [S^T C_m S; C_P S] and the Ritz pairs keep exact residuals. Left out: the part of
        C_m S outside span(S), (I - S S^T) C_m S, zero in exact arithmetic (C_m is symmetric)
        and here the rounding of C; its norm is added to `discarded`, a bound on what the
        residuals computed from C' miss. Products computed ahead for P are kept."""
        if self._start_left:
            raise RuntimeError("restart: the start vectors have not all been multiplied")
        keep = min(int(keep), self.multiplied)
        _, s, _ = self.rayleigh_ritz(0)
        s = s[:, :keep]
        cs = self._coefficients() @ s
        on_multiplied = cs[self.columns]
        projected = s.T @ on_multiplied
        self.discarded += float(np.linalg.norm(on_multiplied - s @ projected, 2))
        pending = list(self.unmultiplied)
        on_pending = cs[pending]
        self.basis.compress(s, self.columns, pending)
        self._coeffs[:] = 0.0
        self._coeffs[:keep, :keep] = projected
        self._coeffs[keep : keep + len(pending), :keep] = on_pending
        moved = {i: keep + n for n, i in enumerate(pending)}
        self._ahead = {moved[i]: product for i, product in self._ahead.items()}
        self.unmultiplied = [moved[i] for i in pending]
        self.columns = list(range(keep))
        self.restarts += 1

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
        """Q_m s for each column of s: (columns, D) host vectors of the basis' dtype."""
        return self.basis.combine(s, self.columns)

    def tridiagonal(self) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, beta) of T_m for a single start vector (b = 1, the basis vectors multiplied
        in order): its diagonal and its sub-diagonal, len(beta) = m - 1."""
        t = self._coefficients()[self.columns]
        return np.diag(t).copy(), np.diag(t, -1).copy()

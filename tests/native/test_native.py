"""Tests of the compiled float64 numerics ``tfbreak._native`` against NumPy/SciPy references.

Tolerance convention (used everywhere below unless a test says otherwise):
  eigenvalues   |w - w_ref| <= RTOL * max|w_ref|                          (RTOL = 1e-10)
  eigenvectors  up to sign, max|v - s v_ref| <= RTOL, only where the eigenvalue is separated from
                its neighbours by a relative gap > GAP (1e-3); every eigenpair is in addition
                checked by its residual max|T V - V diag(w)| <= RTOL * max|w| and orthonormality
                max|V^T V - I| <= RTOL (this covers clustered and repeated eigenvalues, where single
                vectors are not determined).
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.linalg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfbreak import _native

RTOL = 1e-10
GAP = 1e-3


# ----------------------------------------------------------------------------------------------
# helpers


def dense_tridiagonal(alpha, beta):
    return np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)


def scipy_tridiagonal(alpha, beta):
    """Reference eigenpairs in the native convention (values descending)."""
    if len(alpha) == 1:
        return np.asarray(alpha, dtype=float), np.ones((1, 1))
    w, v = scipy.linalg.eigh_tridiagonal(alpha, beta)
    return w[::-1], v[:, ::-1]


def assert_values_close(w, w_ref, rtol=RTOL):
    w, w_ref = np.asarray(w), np.asarray(w_ref)
    assert w.shape == w_ref.shape
    scale = max(np.max(np.abs(w_ref)), np.finfo(float).tiny)
    err = np.max(np.abs(w - w_ref)) if w.size else 0.0
    assert err <= rtol * scale, f"max |w - w_ref| = {err:.3e} > {rtol:.0e} * {scale:.3e}"


def separated(w, gap=GAP):
    """Mask of eigenvalues whose distance to every other one is > gap * max|w|."""
    w = np.asarray(w)
    scale = np.max(np.abs(w)) if w.size else 0.0
    if w.size == 1:
        return np.ones(1, dtype=bool)
    d = np.abs(w[:, None] - w[None, :]) + np.diag(np.full(w.size, np.inf))
    return d.min(axis=1) > gap * scale


def assert_vectors_match(v, v_ref, mask, tol=RTOL):
    """Columns selected by `mask` agree up to sign."""
    for j in np.flatnonzero(mask):
        s = 1.0 if v[:, j] @ v_ref[:, j] >= 0 else -1.0
        err = np.max(np.abs(v[:, j] - s * v_ref[:, j]))
        assert err <= tol, f"eigenvector {j}: max |v - s v_ref| = {err:.3e}"


def assert_eigenpairs(a, w, v, tol=RTOL):
    """Residual and orthonormality of the eigenpairs (w, v) of the dense symmetric matrix a."""
    scale = max(np.max(np.abs(w)), np.finfo(float).tiny)
    res = np.max(np.abs(a @ v - v * w))
    assert res <= tol * scale, f"residual {res:.3e} > {tol:.0e} * {scale:.3e}"
    orth = np.max(np.abs(v.T @ v - np.eye(v.shape[1])))
    assert orth <= tol, f"orthonormality error {orth:.3e}"


def lanczos(a, v0, k):
    """k steps of Lanczos in float64 with full reorthogonalisation (twice is enough).

    Returns alpha (k,), beta (k,): beta[:k-1] is the off-diagonal of T_k, beta[k-1] the norm of the
    next residual (so that ||pi_k(A) v0|| = prod(beta) for the monic orthogonal polynomial pi_k).
    """
    q = np.zeros((a.shape[0], k + 1))
    q[:, 0] = v0 / np.linalg.norm(v0)
    alpha, beta = np.zeros(k), np.zeros(k)
    for j in range(k):
        w = a @ q[:, j]
        alpha[j] = q[:, j] @ w
        for _ in range(2):
            w -= q[:, : j + 1] @ (q[:, : j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        q[:, j + 1] = w / beta[j]
    return alpha, beta


def density_reference(nodes, weights, grid, sigma):
    out = np.zeros_like(grid)
    for x, w in zip(nodes, weights, strict=True):
        z = (grid[:, None] - np.asarray(x)[None, :]) / sigma
        out += (np.exp(-0.5 * z**2) * np.asarray(w)[None, :]).sum(axis=1)
    return out / (sigma * math.sqrt(2 * math.pi) * len(nodes))


# ----------------------------------------------------------------------------------------------
# tridiagonal test matrices: (alpha, beta)


def _tridiagonal_cases():
    rng = np.random.default_rng(20200101)
    cases = {}
    for n in (1, 2, 3, 10, 100, 500):
        cases[f"random-{n}"] = (rng.standard_normal(n), rng.standard_normal(n - 1))
    n = 200
    cases["clustered-1e-9"] = (1 + 1e-9 * rng.standard_normal(n), 1e-9 * rng.standard_normal(n - 1))
    cases["two-clusters"] = (
        rng.choice([-1.0, 1.0], n) + 1e-11 * rng.standard_normal(n),
        1e-11 * rng.standard_normal(n - 1),
    )
    # Exact multiplicity 5: five decoupled copies of tridiag(1, 2, 1) of size 7.
    cases["multiplicity-5"] = (np.full(35, 2.0), np.tile(np.r_[np.ones(6), 0.0], 5)[:-1])
    # Wilkinson W_m^+: eigenvalues in pairs agreeing to ~ 1/m! (W_21^+ first pair: 1e-14 apart).
    for m in (21, 201):
        cases[f"wilkinson-{m}"] = (np.abs(np.arange(m) - (m - 1) / 2), np.ones(m - 1))
    # Graded: diagonal from 1 down to 1e-20, off-diagonal geometric means.
    d = 10.0 ** (-np.arange(100) / 5)
    cases["graded"] = (d, 0.5 * np.sqrt(d[:-1] * d[1:]) * rng.uniform(0.5, 1, 99))
    cases["graded-reversed"] = (d[::-1].copy(), cases["graded"][1][::-1].copy())
    # Rank deficient: T = B B^T with B lower bidiagonal and three zero pivots (PSD, singular);
    # zero diagonal with odd n (eigenvalue 0 exactly); the zero matrix.
    b_diag, b_sub = rng.uniform(0.5, 2, 300), rng.uniform(0.5, 2, 299)
    b_diag[[10, 150, 299]] = 0.0
    cases["rank-deficient-BBt"] = (b_diag**2 + np.r_[0.0, b_sub**2], b_diag[:-1] * b_sub)
    cases["zero-diagonal-odd"] = (np.zeros(101), np.ones(100))
    cases["zero"] = (np.zeros(50), np.zeros(49))
    # Extreme scales (the solver rescales internally).
    cases["huge"] = (1e150 * rng.standard_normal(60), 1e150 * rng.standard_normal(59))
    cases["tiny"] = (1e-150 * rng.standard_normal(60), 1e-150 * rng.standard_normal(59))
    return cases


TRIDIAGONAL_CASES = _tridiagonal_cases()


@pytest.mark.parametrize("case", sorted(TRIDIAGONAL_CASES))
def test_tridiagonal_eigh_matches_scipy(case):
    alpha, beta = TRIDIAGONAL_CASES[case]
    w, v = _native.tridiagonal_eigh(alpha, beta)
    w_ref, v_ref = scipy_tridiagonal(alpha, beta)
    assert w.dtype == np.float64 and v.dtype == np.float64
    assert w.shape == (len(alpha),) and v.shape == (len(alpha), len(alpha))
    assert np.all(np.diff(w) <= 0), "values must be descending"
    assert_values_close(w, w_ref)
    assert_vectors_match(v, v_ref, separated(w_ref))
    scale = np.max(np.abs(w_ref)) or 1.0  # residual test in units of ||T||
    assert_eigenpairs(dense_tridiagonal(alpha, beta) / scale, w / scale, v)
    w_only, none = _native.tridiagonal_eigh(alpha, beta, compute_vectors=False)
    assert none is None
    assert_values_close(w_only, w_ref)


def test_tridiagonal_closed_form_and_multiplicity():
    n = 50  # tridiag(1, 2, 1): 2 + 2 cos(j pi / (n + 1))
    w, _ = _native.tridiagonal_eigh(np.full(n, 2.0), np.ones(n - 1))
    assert_values_close(w, 2 + 2 * np.cos(np.arange(1, n + 1) * np.pi / (n + 1)))
    alpha, beta = TRIDIAGONAL_CASES["multiplicity-5"]
    w, v = _native.tridiagonal_eigh(alpha, beta)
    exact = np.repeat(2 + 2 * np.cos(np.arange(1, 8) * np.pi / 8), 5)
    assert_values_close(w, exact)
    assert_eigenpairs(dense_tridiagonal(alpha, beta), w, v)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 60),
    log_scale=st.floats(-100, 100),
    seed=st.integers(0, 2**32 - 1),
    structure=st.sampled_from(["random", "repeated", "sparse-beta"]),
)
def test_tridiagonal_property(n, log_scale, seed, structure):
    rng = np.random.default_rng(seed)
    alpha, beta = rng.standard_normal(n), rng.standard_normal(max(n - 1, 0))
    if structure == "repeated":
        alpha = rng.choice([-1.0, 0.0, 2.0], n)
        beta = np.zeros(max(n - 1, 0))
    elif structure == "sparse-beta":
        beta[rng.random(beta.size) < 0.5] = 0.0
    alpha, beta = alpha * 10.0**log_scale, beta * 10.0**log_scale
    w, v = _native.tridiagonal_eigh(alpha, beta)
    w_ref, _ = scipy_tridiagonal(alpha, beta)
    assert_values_close(w, w_ref)
    scale = np.max(np.abs(w_ref)) or 1.0
    assert_eigenpairs(dense_tridiagonal(alpha, beta) / scale, w / scale, v)


# ----------------------------------------------------------------------------------------------
# Gauss quadrature


@pytest.mark.parametrize("case", sorted(TRIDIAGONAL_CASES))
def test_gauss_quadrature_is_golub_welsch(case):
    alpha, beta = TRIDIAGONAL_CASES[case]
    nodes, weights = _native.gauss_quadrature(alpha, beta)
    w_ref, v_ref = scipy_tridiagonal(alpha, beta)
    assert np.all(np.diff(nodes) >= 0), "nodes must be ascending"
    assert_values_close(nodes, w_ref[::-1])
    assert np.all(weights >= 0)
    assert abs(weights.sum() - 1) <= RTOL
    # Weights are squared first components; compare them where the node is separated.
    mask = separated(w_ref)[::-1]
    np.testing.assert_allclose(weights[mask], (v_ref[0, ::-1] ** 2)[mask], rtol=0, atol=RTOL)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 12])
def test_gauss_quadrature_exact_to_degree_2k_minus_1(k):
    """sum_j w_j x_j^p = v0^T A^p v0 for p <= 2k - 1 (relative to ||A||^p, which bounds both), and
    not for p = 2k: there the error is ||pi_k(A) v0||^2 = (beta_1 ... beta_k)^2 > 0."""
    rng = np.random.default_rng(k)
    n = 60
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = rng.uniform(-1, 1, n)
    lam[:2] = [-1.0, 1.0]  # ||A|| = 1, so ||A||^p = 1
    a = (q * lam) @ q.T
    a = 0.5 * (a + a.T)
    v0 = rng.standard_normal(n)
    v0 /= np.linalg.norm(v0)
    alpha, beta = lanczos(a, v0, k)
    nodes, weights = _native.gauss_quadrature(alpha, beta[: k - 1])
    u, moments = v0.copy(), [1.0]
    for _ in range(2 * k):
        u = a @ u
        moments.append(v0 @ u)
    for p in range(2 * k):
        quad = weights @ nodes**p
        assert abs(quad - moments[p]) <= RTOL, f"p={p}: {quad!r} vs {moments[p]!r}"
    gap = moments[2 * k] - weights @ nodes ** (2 * k)
    expected = np.prod(beta**2)
    assert gap > 100 * RTOL, "Gauss quadrature must not be exact at degree 2k"
    assert abs(gap - expected) <= RTOL


# ----------------------------------------------------------------------------------------------
# Gram spectrum


def gradients(kind, L, D, rng):
    if kind == "random":
        return rng.standard_normal((L, D))
    if kind == "duplicated":  # 5 distinct gradients, each repeated: centred rank 4
        return np.repeat(rng.standard_normal((5, D)), L // 5, axis=0)
    if kind == "low-rank":  # rank-3 data plus an offset
        return rng.standard_normal((L, 3)) @ rng.standard_normal((3, D)) + rng.standard_normal(D)
    if kind == "all-equal":  # centred rank 0
        return np.tile(7 * rng.standard_normal(D), (L, 1))
    raise ValueError(kind)


GRAM_CASES = [
    ("random", 30, 200),  # D > L: rank L - 1
    ("random", 80, 20),  # D < L: rank D
    ("random", 500, 300),
    ("random", 200, 700),
    ("duplicated", 40, 100),
    ("low-rank", 60, 50),
    ("all-equal", 25, 40),
    ("all-equal", 100, 600),
]


@pytest.mark.parametrize(("kind", "L", "D"), GRAM_CASES)
def test_gram_spectrum_matches_covariance(kind, L, D):
    rng = np.random.default_rng(L * 1000 + D)
    x = gradients(kind, L, D, rng)
    xc = x - x.mean(axis=0)
    cov = xc.T @ xc / L  # (1/L) sum_i (g_i - g_bar)(g_i - g_bar)^T, D x D
    cov_w, cov_v = np.linalg.eigh(cov)
    cov_w, cov_v = cov_w[::-1], cov_v[:, ::-1]
    gram = x @ x.T
    w, u, rank = _native.gram_spectrum(gram)
    assert w.shape == (L,) and u.shape == (L, L)
    assert np.all(np.diff(w) <= 0)
    m = min(L, D)
    # All-equal: cov is 0 and the Gram route gives round-off of the input scale max|G| / L.
    scale = cov_w[0] if kind != "all-equal" else np.max(np.abs(gram)) / L
    assert np.max(np.abs(w[:m] - cov_w[:m])) <= RTOL * scale
    assert np.max(np.abs(w[m:]), initial=0) <= RTOL * scale  # L > D: the rest is zero
    # All-equal rows: the float mean need not equal the row, so numpy sees rank 1 of round-off.
    assert rank == (0 if kind == "all-equal" else np.linalg.matrix_rank(xc))
    # Same as the explicitly centred L x L matrix (1/L) J G J.
    j = np.eye(L) - 1.0 / L
    assert np.max(np.abs(w - np.linalg.eigvalsh(j @ gram @ j / L)[::-1])) <= RTOL * scale
    assert np.max(np.abs(u.T @ u - np.eye(L))) <= RTOL
    # Sample-space eigenvectors map to parameter-space eigenvectors v = Xc^T u / ||Xc^T u||.
    if rank:
        v = xc.T @ u[:, :rank]
        v /= np.linalg.norm(v, axis=0)
        assert np.max(np.abs(cov @ v - v * w[:rank])) <= RTOL * scale
        assert_vectors_match(v, cov_v[:, :rank], separated(cov_w[:rank]))


def test_gram_spectrum_uncentred_and_small_cases():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 50)) + 3
    g = x @ x.T
    w, u, rank = _native.gram_spectrum(g, center=False)
    assert_values_close(w, np.linalg.eigvalsh(g / 20)[::-1])
    assert rank == 20
    assert_eigenpairs(g / 20, w, u)
    # 3 collinear points: centred rank 1, lambda_1 = 10/3 (also the C++ test).
    x = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    w, _, rank = _native.gram_spectrum(x @ x.T)
    assert rank == 1 and abs(w[0] - 10 / 3) <= 1e-14
    w, u, rank = _native.gram_spectrum(np.array([[4.0]]))
    assert (w.tolist(), u.tolist(), rank) == ([0.0], [[1.0]], 0)
    w, u, rank = _native.gram_spectrum(np.zeros((4, 4)))
    assert rank == 0 and not np.any(w)


def test_gram_spectrum_rank_with_large_common_mean():
    """A mean gradient 1e3 x the spread: round-off of the centring must not count as rank, and the
    genuine L - 1 eigenvalues survive (their accuracy is limited to ~eps * max|G|)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 100)) + 1e3 * rng.standard_normal(100)
    gram = x @ x.T
    w, _, rank = _native.gram_spectrum(gram)
    xc = x - x.mean(axis=0)
    ref = np.linalg.eigvalsh(xc @ xc.T / 20)[::-1]
    assert rank == 19
    assert np.max(np.abs(w - ref)) <= 100 * np.finfo(float).eps * np.max(np.abs(gram))


def test_gram_spectrum_rtol():
    """4 centred points in R^50 with covariance eigenvalues (1, 1e-4, 1e-8): rank counts the
    eigenvalues above rtol * lambda_1."""
    w_true = np.array([1.0, 1e-4, 1e-8])
    rng = np.random.default_rng(7)
    u, _ = np.linalg.qr(np.c_[np.ones(4), rng.standard_normal((4, 3))])
    v, _ = np.linalg.qr(rng.standard_normal((50, 3)))
    x = (u[:, 1:] * np.sqrt(4 * w_true)) @ v.T  # Xc = U S V^T, U orthogonal to 1: mean 0
    w, _, rank = _native.gram_spectrum(x @ x.T)
    assert_values_close(w, np.r_[w_true, 0.0])
    assert rank == 3
    assert _native.gram_spectrum(x @ x.T, rtol=1e-6)[2] == 2
    assert _native.gram_spectrum(x @ x.T, rtol=1e-2)[2] == 1


# ----------------------------------------------------------------------------------------------
# spectral density


def _quadrature_sets(rng, n_sets=4, k=12):
    nodes, weights = [], []
    for _ in range(n_sets):
        x, w = _native.gauss_quadrature(rng.standard_normal(k), rng.standard_normal(k - 1))
        nodes.append(x)
        weights.append(w)
    return nodes, weights


def test_gaussian_density_matches_numpy_and_integrates_to_one():
    rng = np.random.default_rng(11)
    nodes, weights = _quadrature_sets(rng)
    sigma = 0.1
    grid = np.linspace(-15, 15, 30001)
    d = _native.gaussian_density(nodes, weights, grid, sigma)
    ref = density_reference(nodes, weights, grid, sigma)
    assert d.shape == grid.shape and d.dtype == np.float64
    assert np.max(np.abs(d - ref)) <= RTOL * np.max(ref)
    assert abs(np.trapezoid(d, grid) - 1) <= 1e-8
    # 2-D array form (one row per set) and ragged list form agree with the list form.
    d2 = _native.gaussian_density(np.array(nodes), np.array(weights), grid, sigma)
    np.testing.assert_array_equal(d2, d)
    ragged_n = [nodes[0], nodes[1][:5]]
    ragged_w = [weights[0], weights[1][:5]]
    np.testing.assert_allclose(
        _native.gaussian_density(ragged_n, ragged_w, grid, sigma),
        density_reference(ragged_n, ragged_w, grid, sigma),
        rtol=0,
        atol=RTOL * 4,
    )


def test_gaussian_density_single_node():
    grid = np.array([-1.0, 0.0, 2.0])
    d = _native.gaussian_density([np.array([0.5])], [np.array([1.0])], grid, 0.5)
    np.testing.assert_allclose(
        d, np.exp(-0.5 * ((grid - 0.5) / 0.5) ** 2) / (0.5 * np.sqrt(2 * np.pi))
    )


# ----------------------------------------------------------------------------------------------
# threads (GIL released during the solve) and input conversion


def test_concurrent_calls_are_correct():
    """Several threads in the native solvers at once (they run with the GIL released) give the
    same bits as a serial call."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((500, 600))
    gram = x @ x.T
    alpha, beta = rng.standard_normal(500), rng.standard_normal(499)
    serial_g = _native.gram_spectrum(gram)
    serial_t = _native.tridiagonal_eigh(alpha, beta)
    barrier = threading.Barrier(4)

    def work(i):
        barrier.wait()
        if i % 2:
            return _native.gram_spectrum(gram)
        return _native.tridiagonal_eigh(alpha, beta)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    for i, res in enumerate(results):
        ref = serial_g if i % 2 else serial_t
        np.testing.assert_array_equal(res[0], ref[0])
        np.testing.assert_array_equal(res[1], ref[1])
        if i % 2:
            assert res[2] == ref[2]


def _layouts(a):
    """Same values as `a`, in other dtypes and memory layouts (the values are exactly
    representable in float16, so every variant converts to identical float64)."""
    out = {
        "float32": a.astype(np.float32),
        "float16": a.astype(np.float16),
        "longdouble": a.astype(np.longdouble),
        "strided": np.repeat(a, 2, axis=0)[::2],
        "reversed-view": a[::-1].copy()[::-1],
        "list": a.tolist(),
    }
    if a.ndim == 2:
        out["fortran"] = np.asfortranarray(a)
        out["transposed-view"] = np.ascontiguousarray(a.T).T
        out["column-strided"] = np.repeat(a, 3, axis=1)[:, ::3]
    return out


def _small_values(rng, shape):
    return (rng.integers(-64, 64, shape) / 8.0).astype(np.float64)  # exact in float16


def test_dtypes_and_layouts_give_identical_results():
    rng = np.random.default_rng(17)
    alpha, beta = _small_values(rng, 40), _small_values(rng, 39)
    x = _small_values(rng, (30, 12))
    gram = np.triu(x @ x.T)
    gram = (gram + np.triu(gram, 1).T).astype(np.float16).astype(np.float64)  # exactly symmetric
    grid = _small_values(rng, 25)
    nodes, weights = _small_values(rng, (3, 6)), np.abs(_small_values(rng, (3, 6)))
    ref_t = _native.tridiagonal_eigh(alpha, beta)
    ref_q = _native.gauss_quadrature(alpha, beta)
    ref_g = _native.gram_spectrum(gram)
    ref_d = _native.gaussian_density(nodes, weights, grid, 0.3)
    for name, a in _layouts(alpha).items():
        for b in _layouts(beta).values():
            res = _native.tridiagonal_eigh(a, b)
            np.testing.assert_array_equal(res[0], ref_t[0], err_msg=name)
            np.testing.assert_array_equal(res[1], ref_t[1], err_msg=name)
            res = _native.gauss_quadrature(a, b)
            np.testing.assert_array_equal(res[0], ref_q[0], err_msg=name)
            np.testing.assert_array_equal(res[1], ref_q[1], err_msg=name)
    for name, g in _layouts(gram).items():
        res = _native.gram_spectrum(g)
        np.testing.assert_array_equal(res[0], ref_g[0], err_msg=name)
        np.testing.assert_array_equal(res[1], ref_g[1], err_msg=name)
        assert res[2] == ref_g[2]
    for name, nd in _layouts(nodes).items():
        wt = _layouts(weights)[name]
        gr = _layouts(grid).get(name, grid)
        res = _native.gaussian_density(nd, wt, gr, 0.3)
        np.testing.assert_array_equal(res, ref_d, err_msg=name)
        # a list of (possibly strided) 1-D rows
        rows_n = [np.asarray(r) for r in (nd if isinstance(nd, list) else list(nd))]
        rows_w = [np.asarray(r) for r in (wt if isinstance(wt, list) else list(wt))]
        np.testing.assert_array_equal(
            _native.gaussian_density(rows_n, rows_w, gr, 0.3), ref_d, err_msg=name
        )


# ----------------------------------------------------------------------------------------------
# bad input: exception type and a message that starts with the argument's name

A3, B2 = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5])
G3 = np.eye(3)
N2, W2, X4 = np.ones((2, 3)), np.full((2, 3), 1 / 3), np.linspace(-1, 1, 4)


def _with(a, idx, value):
    a = np.array(a, dtype=float)
    a[idx] = value
    return a


TRIDIAGONAL_BAD = [
    ("alpha-int", dict(alpha=np.arange(3), beta=B2), TypeError, "alpha"),
    ("alpha-int-list", dict(alpha=[1, 2, 3], beta=B2), TypeError, "alpha"),
    ("alpha-complex", dict(alpha=A3 + 0j, beta=B2), TypeError, "alpha"),
    ("alpha-object", dict(alpha=np.array([1.0, None, 2.0]), beta=B2), TypeError, "alpha"),
    ("alpha-none", dict(alpha=None, beta=B2), TypeError, "alpha"),
    ("alpha-str", dict(alpha="1 2 3", beta=B2), TypeError, "alpha"),
    ("beta-bool", dict(alpha=A3, beta=np.array([True, False])), TypeError, "beta"),
    ("beta-int", dict(alpha=A3, beta=np.array([1, 1], dtype=np.int8)), TypeError, "beta"),
    ("beta-ragged", dict(alpha=A3, beta=[[1.0], [1.0, 2.0]]), TypeError, "beta"),
    ("alpha-2d", dict(alpha=A3[None, :], beta=B2), ValueError, "alpha"),
    ("alpha-0d", dict(alpha=np.float64(1.0), beta=np.zeros(0)), ValueError, "alpha"),
    ("beta-2d", dict(alpha=A3, beta=B2[:, None]), ValueError, "beta"),
    ("beta-too-long", dict(alpha=A3, beta=A3), ValueError, "beta"),
    ("beta-too-short", dict(alpha=A3, beta=B2[:1]), ValueError, "beta"),
    ("beta-for-k1", dict(alpha=A3[:1], beta=B2[:1]), ValueError, "beta"),
    ("alpha-nan", dict(alpha=_with(A3, 1, np.nan), beta=B2), ValueError, "alpha"),
    ("alpha-inf", dict(alpha=_with(A3, 0, -np.inf), beta=B2), ValueError, "alpha"),
    ("beta-inf", dict(alpha=A3, beta=_with(B2, 1, np.inf)), ValueError, "beta"),
    ("beta-nan", dict(alpha=A3, beta=_with(B2, 0, np.nan)), ValueError, "beta"),
    ("alpha-empty", dict(alpha=np.zeros(0), beta=np.zeros(0)), ValueError, "alpha"),
]

GRAM_BAD = [
    ("int", dict(gram=np.eye(3, dtype=int)), TypeError, "gram"),
    ("bool", dict(gram=np.eye(3, dtype=bool)), TypeError, "gram"),
    ("complex", dict(gram=G3 + 0j), TypeError, "gram"),
    ("object", dict(gram=G3.astype(object)), TypeError, "gram"),
    ("none", dict(gram=None), TypeError, "gram"),
    ("str", dict(gram="eye"), TypeError, "gram"),
    ("1d", dict(gram=A3), ValueError, "gram"),
    ("3d", dict(gram=G3[None]), ValueError, "gram"),
    ("non-square", dict(gram=np.ones((3, 4))), ValueError, "gram"),
    ("non-symmetric", dict(gram=_with(G3, (0, 2), 0.1)), ValueError, "gram"),
    ("nan", dict(gram=_with(G3, (1, 1), np.nan)), ValueError, "gram"),
    ("inf", dict(gram=_with(G3, (0, 0), np.inf)), ValueError, "gram"),
    ("empty", dict(gram=np.zeros((0, 0))), ValueError, "gram"),
    ("empty-rows", dict(gram=np.zeros((0, 3))), ValueError, "gram"),
    ("empty-cols", dict(gram=np.zeros((3, 0))), ValueError, "gram"),
    ("rtol-nan", dict(gram=G3, rtol=np.nan), ValueError, "rtol"),
    ("rtol-inf", dict(gram=G3, rtol=np.inf), ValueError, "rtol"),
    ("symmetry-rtol-negative", dict(gram=G3, symmetry_rtol=-1.0), ValueError, "symmetry_rtol"),
    ("symmetry-rtol-nan", dict(gram=G3, symmetry_rtol=np.nan), ValueError, "symmetry_rtol"),
]

DENSITY_BAD = [
    ("nodes-int", dict(nodes=np.ones((2, 3), dtype=int)), TypeError, "nodes"),
    ("nodes-none", dict(nodes=None), TypeError, "nodes"),
    ("nodes-str", dict(nodes="abc"), TypeError, "nodes"),
    ("nodes-float", dict(nodes=1.5), TypeError, "nodes"),
    ("nodes-item-int", dict(nodes=[np.ones(3), np.arange(3)]), TypeError, "nodes[1]"),
    ("nodes-item-none", dict(nodes=[None, np.ones(3)]), TypeError, "nodes[0]"),
    ("weights-complex", dict(weights=W2 + 0j), TypeError, "weights"),
    ("weights-item-bool", dict(weights=[np.ones(3, bool), W2[1]]), TypeError, "weights[0]"),
    ("grid-int", dict(grid=np.arange(4)), TypeError, "grid"),
    ("grid-none", dict(grid=None), TypeError, "grid"),
    ("nodes-1d", dict(nodes=np.ones(3)), ValueError, "nodes"),
    ("nodes-3d", dict(nodes=np.ones((2, 3, 1))), ValueError, "nodes"),
    ("nodes-item-2d", dict(nodes=[np.ones((3, 1)), np.ones(3)]), ValueError, "nodes[0]"),
    ("grid-2d", dict(grid=X4[None]), ValueError, "grid"),
    ("set-count", dict(weights=W2[:1]), ValueError, "weights"),
    ("set-length", dict(weights=[W2[0], W2[1, :2]]), ValueError, "weights[1]"),
    ("nodes-nan", dict(nodes=_with(N2, (1, 2), np.nan)), ValueError, "nodes[1]"),
    ("weights-inf", dict(weights=_with(W2, (0, 0), np.inf)), ValueError, "weights[0]"),
    ("grid-nan", dict(grid=_with(X4, 3, np.nan)), ValueError, "grid"),
    ("sigma-zero", dict(sigma=0.0), ValueError, "sigma"),
    ("sigma-negative", dict(sigma=-1.0), ValueError, "sigma"),
    ("sigma-nan", dict(sigma=np.nan), ValueError, "sigma"),
    ("sigma-inf", dict(sigma=np.inf), ValueError, "sigma"),
    ("sigma-subnormal", dict(sigma=5e-324), ValueError, "sigma"),
    ("sigma-subnormal-large", dict(sigma=2.2e-308), ValueError, "sigma"),
    ("nodes-no-sets", dict(nodes=[], weights=[]), ValueError, "nodes"),
    (
        "nodes-no-sets-2d",
        dict(nodes=np.zeros((0, 3)), weights=np.zeros((0, 3))),
        ValueError,
        "nodes",
    ),
    ("nodes-empty-set", dict(nodes=[[], [1.0]], weights=[[], [1.0]]), ValueError, "nodes[0]"),
    (
        "nodes-empty-2d",
        dict(nodes=np.zeros((2, 0)), weights=np.zeros((2, 0))),
        ValueError,
        "nodes[0]",
    ),
    ("grid-empty", dict(grid=np.zeros(0)), ValueError, "grid"),
]


def _bad_cases():
    for fn in ("tridiagonal_eigh", "gauss_quadrature"):
        for case_id, kwargs, exc, name in TRIDIAGONAL_BAD:
            yield pytest.param(fn, kwargs, exc, name, id=f"{fn}-{case_id}")
    for case_id, kwargs, exc, name in GRAM_BAD:
        yield pytest.param("gram_spectrum", kwargs, exc, name, id=f"gram_spectrum-{case_id}")
    for case_id, kwargs, exc, name in DENSITY_BAD:
        full = dict(nodes=N2, weights=W2, grid=X4, sigma=0.5) | kwargs
        yield pytest.param("gaussian_density", full, exc, name, id=f"gaussian_density-{case_id}")


@pytest.mark.parametrize(("fn", "kwargs", "exc", "name"), list(_bad_cases()))
def test_bad_input_raises_naming_the_argument(fn, kwargs, exc, name):
    with pytest.raises(exc) as info:
        getattr(_native, fn)(**kwargs)
    assert type(info.value) is exc
    assert str(info.value).startswith(f"{name}:"), str(info.value)


def test_smallest_normal_sigma_gives_a_finite_density():
    sigma = np.finfo(np.float64).tiny  # 2.2250738585072014e-308
    assert np.isfinite(_native.gaussian_density(N2, W2, X4, sigma)).all()
    with pytest.raises(ValueError, match=r"^sigma: must be a normal positive float"):
        _native.gaussian_density(N2, W2, X4, np.nextafter(sigma, 0))


HUGE = 10**12  # a float64 copy of this many values (8 TB) cannot be allocated


@pytest.mark.parametrize(
    ("fn", "kwargs", "name"),
    [
        ("tridiagonal_eigh", dict(alpha=np.broadcast_to(np.float32(1), (HUGE,)), beta=B2), "alpha"),
        ("gauss_quadrature", dict(alpha=A3, beta=np.broadcast_to(np.float32(0), (HUGE,))), "beta"),
        ("gram_spectrum", dict(gram=np.broadcast_to(np.float32(1), (10**6, 10**6))), "gram"),
        (
            "gaussian_density",
            dict(nodes=N2, weights=W2, grid=np.broadcast_to(np.float32(0), (HUGE,)), sigma=0.5),
            "grid",
        ),
        (
            "gaussian_density",
            dict(
                nodes=[N2[0], np.broadcast_to(np.float32(0), (HUGE,))],
                weights=W2,
                grid=X4,
                sigma=0.5,
            ),
            "nodes[1]",
        ),
        # The eigenvectors of a 6e6 x 6e6 tridiagonal matrix (288 TB) exceed any address space.
        ("tridiagonal_eigh", dict(alpha=np.zeros(6_000_000), beta=np.zeros(5_999_999)), "alpha"),
    ],
)
def test_allocation_failures_are_memory_errors_naming_the_argument(fn, kwargs, name):
    with pytest.raises(MemoryError) as info:
        getattr(_native, fn)(**kwargs)
    assert str(info.value).startswith(f"{name}: not enough memory"), str(info.value)


def test_good_input_of_the_bad_input_tables_is_accepted():
    """The baselines the bad-input cases perturb are valid, so each case tests one thing."""
    _native.tridiagonal_eigh(A3, B2)
    _native.gram_spectrum(G3)
    _native.gaussian_density(N2, W2, X4, 0.5)


# ----------------------------------------------------------------------------------------------
# fuzz: random garbage gives a result or ValueError/TypeError, never another exception or a crash

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
MOSTLY_FINITE = st.one_of(
    st.floats(-1e3, 1e3), st.floats(allow_nan=False, allow_infinity=False), ANY_FLOAT
)
DTYPES = [
    np.float64,
    np.float32,
    np.float16,
    np.longdouble,
    np.int64,
    np.uint8,
    np.bool_,
    np.complex128,
    object,
    "U4",
    "S3",
    "datetime64[s]",
]


@st.composite
def _float_arrays(draw, shape):
    size = math.prod(shape)
    values = draw(st.lists(MOSTLY_FINITE, min_size=size, max_size=size))
    a = np.array(values, dtype=np.float64).reshape(shape)
    dtype = draw(st.sampled_from(DTYPES + [np.float64] * 6))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            a = a.astype(dtype)
        except (TypeError, ValueError, OverflowError):
            pass
    layout = draw(st.sampled_from(["c", "c", "strided", "reversed", "transposed", "list"]))
    if layout == "strided" and a.ndim:
        a = np.repeat(a, 2, axis=0)[::2]
    elif layout == "reversed" and a.ndim:
        a = a[::-1]
    elif layout == "transposed" and a.ndim == 2:
        a = np.ascontiguousarray(a.T).T
    elif layout == "list":
        a = a.tolist()
    return a


@functools.cache
def float_arrays(shape):
    """Arrays of the given shape: random dtype (mostly float64), values incl. NaN/inf/huge,
    C-contiguous, strided, reversed, transposed or as nested lists. (Cached: building
    strategies is what costs time in hypothesis.)"""
    return _float_arrays(shape)


GARBAGE = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5).flatmap(float_arrays),
    st.none(),
    st.text(max_size=5),
    st.binary(max_size=4),
    ANY_FLOAT,
    st.integers(),
    st.lists(st.one_of(ANY_FLOAT, st.none(), st.text(max_size=2)), max_size=4),
    st.lists(st.lists(ANY_FLOAT, max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=2), ANY_FLOAT, max_size=2),
)


def weighted(*pairs):
    """Draw from one of the strategies with the given integer weights (st.one_of flattens nested
    one_ofs into equally likely branches, which would let the nine garbage kinds dominate)."""
    return st.sampled_from([s for w, s in pairs for _ in range(w)]).flatmap(lambda s: s)


SCALARS = weighted((1, ANY_FLOAT), (1, st.floats(1e-3, 1e3)), (1, st.integers(-3, 3)), (1, GARBAGE))
SIGMAS = weighted((3, st.floats(1e-3, 1e3)), (1, SCALARS))
FLAGS = weighted((3, st.booleans()), (1, SCALARS))


@functools.cache
def clean(shape):
    """Valid input: finite float64 values of moderate size."""
    return hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3))


@functools.cache
def vectors(n):
    """A 1-D array of length n (valid, or of any dtype/values/layout), or garbage."""
    return weighted((2, clean((n,))), (1, float_arrays((n,))), (1, GARBAGE))


@functools.cache
def quadrature_sets(n_sets, k):
    return weighted(
        (2, clean((n_sets, k))),
        (2, st.lists(clean((k,)), min_size=n_sets, max_size=n_sets)),
        (1, float_arrays((n_sets, k))),
        (1, st.lists(vectors(k), min_size=n_sets, max_size=n_sets)),
        (1, GARBAGE),
    )


def _maxabs(obj):
    if isinstance(obj, list | tuple):
        return max((_maxabs(o) for o in obj), default=0.0)
    a = np.asarray(obj, dtype=np.float64)
    return float(np.max(np.abs(a))) if a.size else 0.0


def _call(fn, **kwargs):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(_native, fn)(**kwargs)
    except (ValueError, TypeError) as e:
        assert str(e), "exceptions carry a message"
        return None


FUZZ = settings(
    max_examples=800,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(data=st.data(), k=st.integers(0, 7), fn=st.sampled_from(["tridiagonal_eigh", "gauss"]))
def test_fuzz_tridiagonal_and_quadrature(data, k, fn):
    alpha = data.draw(vectors(k), "alpha")
    beta = data.draw(st.one_of(vectors(max(k - 1, 0)), vectors(k)), "beta")
    if fn == "gauss":
        res = _call("gauss_quadrature", alpha=alpha, beta=beta)
        if res is not None:
            nodes, weights = res
            assert nodes.shape == weights.shape == (np.size(alpha),)
            if _maxabs([alpha, beta]) < 1e150:
                assert np.all(np.isfinite(nodes)) and np.all(np.diff(nodes) >= 0)
                assert abs(weights.sum() - 1) <= 1e-12 * len(weights)
        return
    cv = data.draw(FLAGS, "compute_vectors")
    res = _call("tridiagonal_eigh", alpha=alpha, beta=beta, compute_vectors=cv)
    if res is not None:
        w, v = res
        k = np.size(alpha)
        assert w.shape == (k,)
        assert v is None or v.shape == (k, k)
        if _maxabs([alpha, beta]) < 1e150:
            assert np.all(np.isfinite(w)) and np.all(np.diff(w) <= 0)


@FUZZ
@given(data=st.data(), n=st.integers(0, 5))
def test_fuzz_gram_spectrum(data, n):
    sym = data.draw(st.booleans())
    gram = data.draw(weighted((2, clean((n, n))), (1, float_arrays((n, n))), (1, GARBAGE)), "gram")
    square = isinstance(gram, np.ndarray) and gram.ndim == 2 and gram.shape[0] == gram.shape[1]
    if sym and square and gram.dtype.kind == "f":
        with np.errstate(all="ignore"):
            gram = gram + gram.T
    kwargs = dict(gram=gram)
    for key, values in (("center", FLAGS), ("rtol", SCALARS), ("symmetry_rtol", SCALARS)):
        if data.draw(st.integers(0, 3)) == 0:
            kwargs[key] = data.draw(values, key)
    res = _call("gram_spectrum", **kwargs)
    if res is not None:
        w, u, rank = res
        L = np.shape(gram)[0]
        assert w.shape == (L,) and u.shape == (L, L) and 0 <= rank <= L
        assert np.all(np.isfinite(w)) and np.all(np.isfinite(u))


@FUZZ
@given(data=st.data(), n_sets=st.integers(0, 3), k=st.integers(0, 4), m=st.integers(0, 4))
def test_fuzz_gaussian_density(data, n_sets, k, m):
    nodes = data.draw(quadrature_sets(n_sets, k), "nodes")
    weights = data.draw(quadrature_sets(n_sets, k), "weights")
    grid = data.draw(vectors(m), "grid")
    sigma = data.draw(SIGMAS, "sigma")
    res = _call("gaussian_density", nodes=nodes, weights=weights, grid=grid, sigma=sigma)
    if res is not None:
        assert res.shape == (np.size(grid),)
        if _maxabs([nodes, weights, grid]) < 1e100 and 1e-100 < float(sigma) < 1e100:
            assert np.all(np.isfinite(res))

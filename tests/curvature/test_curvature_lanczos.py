"""Lanczos top-k eigenpairs vs numpy.linalg.eigh (float64; relative error <= 1e-8)."""

import warnings
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
from dense_reference import (
    BlockOperator,
    bn_cnn,
    dense_hessian,
    dense_operator,
    embedding_lstm,
    softmax_regression,
    tanh_mlp,
)

from tfbreak.curvature import HessianOperator, LanczosWarning, classification_loss
from tfbreak.curvature import lanczos as core_lanczos

RTOL = 1e-8

lanczos = partial(core_lanczos, basis="host")  # the Krylov basis on the host, as by default


def top_k_check(h, result, k):
    ref = np.linalg.eigh(h)[0][::-1][:k]
    scale = np.abs(ref).max()
    assert np.all(np.abs(result.eigenvalues - ref) <= RTOL * scale)
    # The certified intervals hold; the stopping rule certifies eigenvalues (error ~ r^2 / gap),
    # so Ritz vectors are accurate to ~sqrt(RTOL); the reported residuals are honest.
    lo, hi = result.intervals.T
    assert np.all((lo - 1e-12 * scale <= ref) & (ref <= hi + 1e-12 * scale))
    for theta, y, r in zip(result.eigenvalues, result.eigenvectors, result.residuals, strict=True):
        true_residual = np.linalg.norm(h @ y - theta * y)
        assert true_residual <= 1e-4 * scale
        assert true_residual <= r + 1e-9 * scale


def model_problems():
    rng = np.random.default_rng(10)
    variables, loss_fn, batch, _ = softmax_regression(rng)
    yield "softmax", variables, loss_fn, batch
    model, batch = tanh_mlp(rng)
    yield (
        "tanh_mlp",
        model.trainable_variables,
        classification_loss(model, bn_mode="inference"),
        batch,
    )
    model, batch = bn_cnn(rng)
    yield (
        "bn_cnn",
        model.trainable_variables,
        classification_loss(model, bn_mode="inference"),
        batch,
    )
    model, batch = embedding_lstm(rng, unroll=True)
    yield "lstm", model.trainable_variables, classification_loss(model, bn_mode="inference"), batch


@pytest.mark.parametrize("problem", list(model_problems()), ids=lambda p: p[0])
def test_top5_of_model_hessians(problem):
    _, variables, loss_fn, batch = problem
    op = HessianOperator(variables, loss_fn, [batch], mode="reverse_over_reverse")
    h = dense_hessian(variables, loss_fn, [batch])
    result = lanczos(op, k=5, tol=1e-10, max_iter=op.dim, converge_k=5, block=1)
    assert result.converged
    top_k_check(h, result, 5)


def diagonal_operator(spectrum, seed=0):
    """A dense symmetric matrix with a given spectrum (random orthogonal basis)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(spectrum),) * 2))
    return (q * spectrum) @ q.T


SPECTRA = {
    "clustered": np.concatenate([10 + 1e-3 * np.arange(5), np.linspace(0, 1, 55)]),
    "repeated": np.concatenate([[7.0, 7.0, 7.0, 3.0, 3.0], np.linspace(-1, 1, 35)]),
    "tiny_gaps": np.concatenate([5 + 1e-7 * np.arange(4), [4.0], np.linspace(-2, 2, 51)]),
    "indefinite": np.linspace(-3, 2, 40),
}


@pytest.mark.parametrize("name", SPECTRA)
def test_no_ghost_eigenvalues(name):
    spectrum = SPECTRA[name]
    a = diagonal_operator(spectrum)
    true = np.sort(spectrum)[::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LanczosWarning)  # breakdown restarts are expected here
        result = lanczos(
            dense_operator(a),
            k=5,
            tol=1e-12,
            max_iter=a.shape[0],
            converge_k=5,
            block=1,
        )
    # No spurious copy: every Ritz value is a true eigenvalue, never more often than its
    # multiplicity; with the whole space explored the top 5 come out with multiplicity.
    for theta in result.eigenvalues:
        assert np.min(np.abs(true - theta)) <= 1e-9 * np.abs(true).max()
    assert np.all(np.abs(result.eigenvalues - true[:5]) <= 1e-9 * np.abs(true).max())


def test_invariant_start_space_breaks_down_and_restarts_with_warning():
    """v0 in the span of two eigenvectors: the Krylov space is invariant after 2 steps."""
    a = np.diag(np.arange(1.0, 31.0))
    v0 = np.zeros(30)
    v0[[3, 10]] = 1.0
    with pytest.warns(LanczosWarning, match="breakdown at step 2"):
        result = lanczos(
            dense_operator(a),
            k=3,
            tol=1e-12,
            max_iter=30,
            converge_k=3,
            block=1,
            v0=v0,
        )
    assert result.restarts >= 1
    np.testing.assert_allclose(result.eigenvalues, [30, 29, 28], rtol=1e-10)


def test_warm_start_from_exact_top_eigenvector():
    a = diagonal_operator(np.linspace(0.1, 9.0, 80), seed=3)
    w, v = np.linalg.eigh(a)
    calls = []
    op = dense_operator(a, calls)
    result = lanczos(op, k=1, tol=1e-8, max_iter=34, converge_k=1, block=1, v0=v[:, -1])
    assert result.matvecs <= 3 and len(calls) <= 3
    assert abs(result.eigenvalues[0] - w[-1]) <= 1e-10 * w[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LanczosWarning)  # 34 products cannot certify 1e-8 cold
        cold = lanczos(dense_operator(a), k=1, tol=1e-8, max_iter=34, converge_k=1, block=1)
    assert cold.matvecs > result.matvecs


def test_warm_start_from_several_previous_eigenvectors():
    a = diagonal_operator(np.linspace(0.1, 9.0, 80), seed=4)
    w, v = np.linalg.eigh(a)
    result = lanczos(
        dense_operator(a),
        k=3,
        tol=1e-8,
        max_iter=42,
        converge_k=3,
        block=1,
        v0=v[:, -3:].T,
    )
    assert result.matvecs <= 5
    np.testing.assert_allclose(result.eigenvalues, w[::-1][:3], rtol=1e-10)


@pytest.mark.parametrize("warm", [False, True])
def test_block_products_change_the_cost_not_the_steps(warm):
    """With matvec_block, the products whose vectors are known in advance (band Lanczos' pending
    vectors; a warm start's start block) are computed together; the Krylov steps and so the
    result are those of one product at a time: identical for identical products."""
    a = diagonal_operator(np.concatenate([[9.0, 8.9, 7.0], np.linspace(0.0, 5.0, 117)]), seed=6)
    w, v = np.linalg.eigh(a)
    v0 = (v[:, -3:] + 0.05 * np.random.default_rng(7).standard_normal((120, 3))).T if warm else None
    args = {"k": 3, "tol": 1e-9, "max_iter": 60, "converge_k": 3, "block": 3, "v0": v0, "seed": 8}
    one_at_a_time = lanczos(dense_operator(a), **args)
    op = BlockOperator(a)
    blocked = lanczos(op, **args)
    assert blocked.converged and one_at_a_time.converged
    np.testing.assert_allclose(blocked.eigenvalues, w[::-1][:3], rtol=0, atol=1e-9 * 9.0)
    for field in ("eigenvalues", "eigenvectors", "error_bounds", "residuals"):
        np.testing.assert_array_equal(getattr(blocked, field), getattr(one_at_a_time, field))
    # Every product counted, including those computed ahead that the stop left unused.
    assert blocked.matvecs == sum(op.calls)
    assert one_at_a_time.matvecs <= blocked.matvecs <= one_at_a_time.matvecs + 2
    if warm:  # the start block in one call, then one residual direction per step
        assert op.calls[0] == 3 and set(op.calls[1:]) == {1}
    else:  # band Lanczos: the three pending vectors per call
        assert set(op.calls[:-1]) == {3}


def test_block_products_stop_at_max_iter():
    a = diagonal_operator(np.linspace(0, 1, 200), seed=5)
    op = BlockOperator(a)
    with pytest.warns(LanczosWarning, match="max_iter"):
        result = lanczos(op, k=3, tol=1e-12, max_iter=7, converge_k=3, block=3)
    assert op.calls == [3, 3, 1] and result.matvecs == 7


def test_bad_block_matvec_shape():
    op = BlockOperator(np.eye(10))
    op.matvec_block = lambda vectors: vectors[:, :-1]
    with pytest.raises(ValueError, match=r"matvec_block: returned shape \(2, 9\), expected"):
        lanczos(op, k=1, tol=1e-3, max_iter=10, converge_k=1, block=2)


def test_not_converged_warns():
    a = diagonal_operator(np.linspace(0, 1, 200), seed=5)
    with pytest.warns(LanczosWarning, match="max_iter"):
        result = lanczos(dense_operator(a), k=3, tol=1e-12, max_iter=6, converge_k=3, block=1)
    assert not result.converged and result.matvecs == 6


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"op": np.ones(10)}, "op: expected a square operator"),
        ({"k": 0}, "k: must be a positive integer"),
        ({"k": 11}, "k: asked for 11 eigenpairs of an operator of dimension 10"),
        ({"tol": 0.0}, "tol"),
        ({"k": 3, "converge_k": 3, "max_iter": 2}, "max_iter"),
        ({"v0": np.zeros(10)}, "v0: start vector must be finite and non-zero"),
        ({"v0": np.ones(9)}, "v0: expected shape"),
    ],
)
def test_bad_input(kwargs, match):
    args = {
        "op": dense_operator(np.eye(10)),
        "k": 1,
        "tol": 1e-3,
        "max_iter": 10,
        "converge_k": 1,
        "block": 1,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        lanczos(**args)


def test_bad_matvec_shape():
    with pytest.raises(ValueError, match="matvec: returned shape"):
        lanczos(
            SimpleNamespace(shape=(10, 10), matvec=lambda x: x[:-1]),
            k=1,
            tol=1e-3,
            max_iter=10,
            converge_k=1,
            block=1,
        )


def test_converge_k_stops_on_lambda_1_and_reports_the_others_with_residuals():
    a = diagonal_operator(np.concatenate([[9.0], 5 + 1e-3 * np.arange(6), np.linspace(0, 1, 90)]))
    true = np.sort(np.linalg.eigvalsh(a))[::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LanczosWarning)
        one = lanczos(dense_operator(a), k=5, tol=1e-6, converge_k=1, max_iter=97, block=1)
        all5 = lanczos(dense_operator(a), k=5, tol=1e-6, converge_k=5, max_iter=97, block=1)
    assert one.converged and one.error_bounds[0] <= 1e-6 * 9.0
    lo, hi = one.intervals[0]
    assert lo <= 9.0 <= hi and abs(one.eigenvalues[0] - 9.0) <= 1e-6 * 9.0
    assert one.matvecs < all5.matvecs
    # The other Ritz values carry honest bounds: each is within its residual of an eigenvalue.
    for theta, r in zip(one.eigenvalues, one.residuals, strict=True):
        assert np.min(np.abs(true - theta)) <= r + 1e-12
    with pytest.raises(ValueError, match="converge_k"):
        lanczos(dense_operator(a), k=2, tol=1e-6, max_iter=97, converge_k=3, block=1)

"""H and K as operators: products and scipy's eigsh on the LinearOperator view agree with the
explicit dense matrices (float64; products to 1e-10, top eigenvalues to 1e-8 relative)."""

import numpy as np
import pytest
import tensorflow as tf
from dense_reference import dense_hessian, tanh_mlp
from scipy.sparse.linalg import eigsh

from tfbreak.curvature import (
    CovarianceOperator,
    CurvatureOperator,
    GradientFunctions,
    HessianOperator,
    classification_loss,
    covariance_spectrum,
)


def _check(op: CurvatureOperator, dense: np.ndarray, rng) -> None:
    d = dense.shape[0]
    assert op.dim == d and op.shape == (d, d) and op.dtype == np.float64
    for _ in range(3):
        v = rng.standard_normal(d)
        hv = op.matvec(v)
        assert hv.dtype == np.float64
        assert np.linalg.norm(hv - dense @ v) <= 1e-10 * np.linalg.norm(dense @ v)
    ref = np.linalg.eigvalsh(dense)[::-1][:3]
    got = np.sort(eigsh(op.as_linear_operator(), k=3, which="LA", tol=1e-12)[0])[::-1]
    np.testing.assert_allclose(got, ref, rtol=1e-8)


def test_hessian_operator_with_scipy_eigsh():
    rng = np.random.default_rng(0)
    model, batch = tanh_mlp(rng, n=24)
    loss_fn = classification_loss(model, bn_mode="inference")
    dense = dense_hessian(model.trainable_variables, loss_fn, [batch])
    op = HessianOperator(model.trainable_variables, loss_fn, [batch], mode="reverse_over_reverse")
    _check(op, dense, rng)


@pytest.mark.parametrize("M", [1, 4])
def test_covariance_operator_with_scipy_eigsh(M):
    """K_M = (1/L) sum_i (g_i - g_bar)(g_i - g_bar)^T from per-example (M = 1) or mini-batch
    gradients, against the explicit D x D matrix; its Gram spectrum gives the same values."""
    rng = np.random.default_rng(1)
    model, batch = tanh_mlp(rng, n=24)
    grads = GradientFunctions(
        model.trainable_variables, classification_loss(model, bn_mode="inference")
    )
    if M == 1:
        op = CovarianceOperator.per_example(grads, batch, on_host=False)
        g = grads.per_example(batch).numpy()
    else:
        batches = [
            tf.nest.map_structure(lambda t, i=i: t[M * i : M * (i + 1)], batch) for i in range(6)
        ]
        op = CovarianceOperator.minibatches(grads, batches, on_host=False)
        g = np.stack([grads.minibatch(b).numpy() for b in batches])
    d = g - g.mean(0)
    dense = d.T @ d / len(g)
    assert op.M == M and op.L == len(g)
    _check(op, dense, rng)
    spectrum = covariance_spectrum(op)
    np.testing.assert_allclose(
        spectrum.eigenvalues[:3], np.linalg.eigvalsh(dense)[::-1][:3], rtol=1e-10
    )

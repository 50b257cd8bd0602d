"""The Krylov basis' storage: float32 by default for float32 products, float64 on request, or a
tf.Variable. Checked against dense float64 references: the certified intervals of the float32
basis hold the exact eigenvalues, and its lambda_1 agrees with the float64 basis' to 1e-6
relative (lanczos_tol is 1e-3 by default)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dense_reference import dense_hessian

from tfbreak.curvature import HessianOperator, classification_loss, lanczos, slq_density
from tfbreak.curvature.algorithms.krylov import BlockKrylov, HostBasis
from tfbreak.curvature.operators.base import rounding_precision


class Float32Operator:
    """A dense float64 matrix whose products are computed from float32 inputs and rounded to
    float32 (the accuracy of a float32 model's Hessian-vector products)."""

    dtype = np.dtype(np.float32)
    precision = rounding_precision(np.float32)

    def __init__(self, a: np.ndarray):
        self.a, self.shape = a, a.shape

    def matvec(self, v):
        return (self.a @ np.asarray(v, np.float32).astype(np.float64)).astype(np.float32)

    def matvec_rows(self, vectors):
        rows = np.asarray(vectors, np.float32).astype(np.float64)
        return (rows @ self.a).astype(np.float32)


def spectrum_matrix(spectrum, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(spectrum),) * 2))
    return (q * spectrum) @ q.T


def certified(result, true_top):
    lo, hi = result.intervals.T
    k = len(result.eigenvalues)
    return np.all((lo <= true_top[:k]) & (true_top[:k] <= hi))


@pytest.mark.parametrize("k,block", [(1, 1), (5, 2)])
def test_float32_basis_is_certified_and_agrees_with_float64(k, block):
    # Five top eigenvalues and a bulk: the float32 basis makes the same steps as float64.
    spectrum = np.concatenate([[10.0, 9.0, 8.6, 8.0, 7.5], np.linspace(-1.0, 5.0, 595)])
    a = spectrum_matrix(spectrum, seed=1)
    true = np.sort(spectrum)[::-1]
    args = {"k": k, "tol": 1e-3, "max_iter": 60, "converge_k": 1, "block": block, "seed": 3}
    f32 = lanczos(Float32Operator(a), basis="host", **args)
    f64 = lanczos(Float32Operator(a), basis="host_float64", **args)
    assert f32.converged and f64.converged
    assert f32.eigenvectors.dtype == np.float32 and f64.eigenvectors.dtype == np.float64
    assert certified(f32, true) and certified(f64, true)
    assert f32.matvecs == f64.matvecs
    assert abs(f32.eigenvalues[0] - f64.eigenvalues[0]) <= 1e-6 * f64.eigenvalues[0]
    # The stored basis' rounding is part of the certified intervals, and small.
    assert f64.rounding < f32.rounding <= 2 * rounding_precision(np.float32) * 10.0
    # The Ritz vector is a unit vector with the reported residual (up to float32 rounding).
    y = f32.eigenvectors[0].astype(np.float64)
    assert abs(np.linalg.norm(y) - 1.0) <= 1e-6
    true_residual = np.linalg.norm(a @ y - f32.eigenvalues[0] * y)
    assert abs(true_residual - f32.residuals[0]) <= 1e-5 * 10.0


def test_float32_basis_on_a_float32_model_against_its_float64_dense_hessian():
    """lambda_1 of a float32 model's Hessian: certified against the float64 Hessian of the same
    weights, and the float32 and float64 bases agree to 1e-6 relative."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32).astype(np.int32)

    def mlp(dtype):
        keras.utils.set_random_seed(5)
        return keras.Sequential(
            [
                keras.Input((6,), dtype=dtype),
                keras.layers.Dense(12, activation="tanh", dtype=dtype),
                keras.layers.Dense(3, dtype=dtype),
            ]
        )

    m32, m64 = mlp("float32"), mlp("float64")
    for v32, v64 in zip(m32.trainable_variables, m64.trainable_variables, strict=True):
        v64.assign(tf.cast(v32, tf.float64))
    loss64 = classification_loss(m64, bn_mode="inference")
    h = dense_hessian(
        m64.trainable_variables, loss64, [(tf.constant(x, tf.float64), tf.constant(y))]
    )
    true = np.sort(np.linalg.eigvalsh(h))[::-1]
    op = HessianOperator(
        m32.trainable_variables,
        classification_loss(m32, bn_mode="inference"),
        [(x, y)],
        mode="reverse_over_reverse",
    )
    assert op.dtype == np.float32
    args = {"k": 1, "tol": 1e-5, "max_iter": op.dim, "converge_k": 1, "block": 1, "seed": 2}
    f32 = lanczos(op, basis="host", **args)
    f64 = lanczos(op, basis="host_float64", **args)
    assert certified(f32, true) and certified(f64, true)
    assert abs(f32.eigenvalues[0] - f64.eigenvalues[0]) <= 1e-6 * true[0]
    assert abs(f32.eigenvalues[0] - true[0]) <= 1e-5 * true[0]


def test_device_basis_matches_the_host_basis():
    """The tf.Variable basis (here in host memory: no accelerator) makes the same steps; its
    results agree with the host float32 basis to float32 rounding."""
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)]
    )
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    op = HessianOperator(
        model.trainable_variables,
        classification_loss(model, bn_mode="inference"),
        [(x, y)],
        mode="reverse_over_reverse",
    )
    args = {"k": 3, "tol": 1e-4, "max_iter": 40, "converge_k": 2, "block": 2, "seed": 4}
    host = lanczos(op, basis="host", **args)
    device = lanczos(op, basis="device", **args)
    assert device.matvecs == host.matvecs and device.converged
    np.testing.assert_allclose(device.eigenvalues, host.eigenvalues, rtol=1e-6)
    np.testing.assert_allclose(device.error_bounds, host.error_bounds, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(device.eigenvectors, host.eigenvectors, atol=1e-4)
    # Warm start from the previous eigenvectors (thick restart: rotations of the basis).
    warm = {**args, "seed": 5}
    w_host = lanczos(op, basis="host", v0=host.eigenvectors, **warm)
    w_device = lanczos(op, basis="device", v0=host.eigenvectors, **warm)
    assert w_device.matvecs == w_host.matvecs
    np.testing.assert_allclose(w_device.eigenvalues, w_host.eigenvalues, rtol=1e-6)
    dens = [slq_density(op, num_vectors=2, steps=8, seed=1, basis=b) for b in ("host", "device")]
    for x_host, x_device in zip(dens[0].nodes, dens[1].nodes, strict=True):
        np.testing.assert_allclose(x_device, x_host, rtol=1e-5, atol=1e-6)


def test_basis_is_allocated_once_and_bounded():
    a = spectrum_matrix(np.linspace(0.0, 1.0, 300), seed=2)
    op = Float32Operator(a)
    basis = HostBasis(300, capacity=12, dtype=np.float32)
    data = basis.data
    krylov = BlockKrylov(
        op.matvec_rows, [np.random.default_rng(0).standard_normal(300)], basis, expand_all=True
    )
    for _ in range(11):
        krylov.step()
    assert basis.data is data and basis.size == 12  # never reallocated
    q = basis.data.astype(np.float64)
    assert np.abs(q @ q.T - np.eye(12)).max() <= 13 * 2.0**-24  # (m + 1) u
    with pytest.raises(RuntimeError, match="all 12 rows are in use"):
        krylov.step()
    with pytest.raises(ValueError, match="basis: expected one of"):
        lanczos(op, k=1, tol=1e-3, max_iter=5, converge_k=1, block=1, basis="disk")
    with pytest.raises(ValueError, match="basis: 'device' needs an operator with apply_block"):
        lanczos(op, k=1, tol=1e-3, max_iter=5, converge_k=1, block=1, basis="device")


def test_an_operator_returning_its_input_does_not_corrupt_the_basis():
    """Products are orthogonalised in place; one that is the basis' own memory is copied."""
    op = type("Identity", (), {"shape": (50, 50), "matvec_block": staticmethod(lambda v: v)})()
    op.matvec = lambda v: v
    result = lanczos(op, k=2, tol=1e-8, max_iter=6, converge_k=2, block=2, basis="host")
    np.testing.assert_allclose(result.eigenvalues, [1.0, 1.0], rtol=1e-12)

"""Hutchinson trace and stochastic Lanczos quadrature vs exact dense quantities (float64)."""

import numpy as np
import pytest
from dense_reference import BlockOperator, dense_hessian, dense_operator, tanh_mlp

from tfbreak.curvature import HessianOperator, classification_loss, hutchinson_trace, slq_density


def random_symmetric(n, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * rng.standard_normal(n) * 3) @ q.T


def test_hutchinson_within_three_standard_errors_over_20_seeds():
    rng = np.random.default_rng(0)
    model, batch = tanh_mlp(rng)
    loss_fn = classification_loss(model, bn_mode="inference")
    op = HessianOperator(model.trainable_variables, loss_fn, [batch], mode="reverse_over_reverse")
    exact = np.trace(dense_hessian(model.trainable_variables, loss_fn, [batch]))
    for seed in range(20):
        est = hutchinson_trace(op, num_samples=30, seed=seed)
        assert abs(est.mean - exact) <= 3 * est.stderr, (seed, est.mean, exact, est.stderr)
        assert est.samples.shape == (30,)


def test_hutchinson_is_unbiased_on_a_matrix():
    a = random_symmetric(50, 1)
    op = dense_operator(a)
    means = [hutchinson_trace(op, num_samples=20, seed=s).mean for s in range(200)]
    stderr = np.std(means, ddof=1) / np.sqrt(len(means))
    assert abs(np.mean(means) - np.trace(a)) <= 3 * stderr


def test_slq_quadrature_moments_and_density():
    n = 60
    a = random_symmetric(n, 2)
    steps = 8
    dens = slq_density(
        dense_operator(a), num_vectors=3, steps=steps, seed=5, num_points=4000, basis="host"
    )
    # Exact: each Gauss rule reproduces v^T A^p v for p <= 2 steps - 1.
    rng = np.random.default_rng(5)
    for x, w in zip(dens.nodes, dens.weights, strict=True):
        v = (rng.integers(0, 2, size=n) * 2.0 - 1.0) / np.sqrt(n)
        for p in range(2 * steps):
            exact = v @ np.linalg.matrix_power(a, p) @ v
            assert abs(w @ x**p - exact) <= 1e-9 * max(1.0, abs(exact))
    # The broadened density integrates to 1 and keeps the quadrature mean; the second moment
    # grows by exactly sigma^2.
    t, phi = dens.grid, dens.density
    assert abs(np.trapezoid(phi, t) - 1) <= 1e-6
    assert abs(np.trapezoid(t * phi, t) - dens.moment(1)) <= 1e-6
    assert abs(np.trapezoid(t**2 * phi, t) - (dens.moment(2) + dens.sigma**2)) <= 1e-5
    # The moments estimate Tr(A^p) / D: within 4 standard deviations of the Rademacher
    # estimator, Var[v^T B v] = 2 (||B||_F^2 - sum_i B_ii^2) / D^2 for unit v.
    for p, b in ((1, a), (2, a @ a)):
        sd = np.sqrt(2 * (np.sum(b**2) - np.sum(np.diag(b) ** 2))) / n / np.sqrt(3)
        assert abs(dens.moment(p) - np.trace(b) / n) <= 4 * sd


def test_slq_full_steps_recover_the_spectrum():
    """With steps = D the nodes are the exact eigenvalues."""
    a = random_symmetric(20, 3)
    dens = slq_density(dense_operator(a), num_vectors=1, steps=20, basis="host")
    np.testing.assert_allclose(np.sort(dens.nodes[0]), np.linalg.eigvalsh(a), atol=1e-9)


def test_block_products_leave_the_estimates_unchanged():
    """Hutchinson's probes four per block product and SLQ's Lanczos runs in lockstep (one block
    product per step): the same numbers as one product at a time, bit for bit."""
    a = random_symmetric(40, 4)
    op = BlockOperator(a)
    blocked = hutchinson_trace(op, num_samples=10, seed=3)
    assert op.calls == [4, 4, 2]
    single = hutchinson_trace(dense_operator(a), num_samples=10, seed=3)
    np.testing.assert_array_equal(blocked.samples, single.samples)
    op.calls.clear()
    blocked = slq_density(op, num_vectors=3, steps=6, seed=4, basis="host")
    assert op.calls == [3] * 6
    one_at_a_time = slq_density(dense_operator(a), num_vectors=3, steps=6, seed=4, basis="host")
    for field in ("nodes", "weights"):
        for x, y in zip(getattr(blocked, field), getattr(one_at_a_time, field), strict=True):
            np.testing.assert_array_equal(x, y)
    # The first probe's quadrature is that of a single Lanczos run from it.
    alone = slq_density(dense_operator(a), num_vectors=1, steps=6, seed=4, basis="host")
    np.testing.assert_array_equal(blocked.nodes[0], alone.nodes[0])


@pytest.mark.parametrize(
    "fn,kwargs,match",
    [
        (hutchinson_trace, {"num_samples": 0}, "num_samples"),
        (hutchinson_trace, {"op": np.eye(3)[0]}, "op: expected a square operator"),
        (slq_density, {"num_vectors": 0}, "num_vectors"),
        (slq_density, {"steps": 0}, "steps"),
        (slq_density, {"sigma": -1.0}, "sigma"),
    ],
)
def test_bad_input(fn, kwargs, match):
    sizes = (
        {"num_samples": 2}
        if fn is hutchinson_trace
        else {"num_vectors": 1, "steps": 3, "basis": "host"}
    )
    args = {"op": dense_operator(np.eye(5)), **sizes, **kwargs}
    with pytest.raises(ValueError, match=match):
        fn(**args)

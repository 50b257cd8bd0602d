"""Delta L and the break-even condition (Eq. 1) on models with known per-example curvature."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from dense_reference import bn_cnn, dense_hessian, embedding_lstm, tanh_mlp

from tfbreak.curvature import (
    CurvatureAlong,
    DeltaLoss,
    HessianOperator,
    classification_loss,
    lanczos,
)
from tfbreak.curvature.eq1 import eq1_lhs, lr_max


def quadratic_problem(rng, n=10, dim=6):
    """l_i(theta) = h_i/2 (<e, theta> - c_i)^2 + a_i/2 ||theta - <e, theta> e||^2: example i
    has curvature h_i along the unit direction e (and a_i across it)."""
    e = rng.standard_normal(dim)
    e /= np.linalg.norm(e)
    h = rng.uniform(2.0, 6.0, n)
    a = rng.uniform(0.1, 0.5, n)
    c = rng.standard_normal(n)
    theta = tf.Variable(rng.standard_normal(dim))
    e_t = tf.constant(e)

    def loss_fn(batch):
        hb, ab, cb = batch
        proj = tf.tensordot(theta, e_t, 1)
        perp = theta - proj * e_t
        return 0.5 * hb * (proj - cb) ** 2 + 0.5 * ab * tf.reduce_sum(perp**2)

    batch = (tf.constant(h), tf.constant(a), tf.constant(c))
    return theta, loss_fn, batch, e, h


def test_eq1_hand_computed():
    # (1 - 0.1 * 15)^2 + 4 * 0.01 * (100 - 10) / (10 * 99) = 0.25 + 0.0036363...
    assert eq1_lhs(0.1, 15.0, 4.0, 100, 10) == pytest.approx(0.25 + 0.04 * 90 / 990, rel=1e-15)
    assert eq1_lhs(0.01, 200.0, 0.0, 50, 50) == pytest.approx(1.0)  # S = N: lambda_1 = 2 / eta
    np.testing.assert_allclose(eq1_lhs([0.1, 0.2], [1.0, 1.0], [0.0, 0.0], 10, 2), [0.81, 0.64])
    with pytest.raises(ValueError, match="1 <= S <= N"):
        eq1_lhs(0.1, 1.0, 1.0, 10, 11)


def test_lr_max_is_where_eq1_reaches_one():
    """eta_max solves LHS(eta) = 1; the point is stable below it and unstable above."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        lam, s2 = rng.uniform(1, 100), rng.uniform(0, 1e4)
        n, s = int(rng.integers(100, 10**5)), int(rng.integers(1, 100))
        eta = float(lr_max(lam, s2, n, s))
        assert eq1_lhs(eta, lam, s2, n, s) == pytest.approx(1.0, rel=1e-12)
        assert eq1_lhs(0.99 * eta, lam, s2, n, s) < 1 < eq1_lhs(1.01 * eta, lam, s2, n, s)
    assert lr_max(10.0, 0.0, 50, 50) == pytest.approx(0.2)  # S = N: 2 / lambda_1
    assert np.isnan(lr_max(-1.0, 1.0, 50, 10))


def test_curvature_along_known_per_example_curvatures():
    rng = np.random.default_rng(0)
    theta, loss_fn, batch, e, h = quadratic_problem(rng)
    split = [
        tf.nest.map_structure(lambda t: t[:4], batch),
        tf.nest.map_structure(lambda t: t[4:], batch),
    ]
    curv = CurvatureAlong([theta], loss_fn)(split, 3.0 * e)  # any scale: e is normalised
    np.testing.assert_allclose(curv.values, h, rtol=1e-12)
    assert curv.mean == pytest.approx(h.mean(), rel=1e-12)
    assert curv.s2 == pytest.approx(h.var(), rel=1e-12)
    # e is the top eigenvector of the mean Hessian; Lanczos finds lambda_1 = mean(h).
    op = HessianOperator([theta], loss_fn, split, mode="reverse_over_reverse")
    top = lanczos(op, k=1, tol=1e-12, max_iter=6, converge_k=1, block=1, basis="host")
    assert top.eigenvalues[0] == pytest.approx(h.mean(), rel=1e-10)
    assert CurvatureAlong([theta], loss_fn)(split, top.eigenvectors[0]).mean == pytest.approx(
        top.eigenvalues[0], rel=1e-9
    )


def test_eq1_is_the_exact_second_moment_factor_of_sgd_on_the_quadratic():
    """Along e, one SGD step with a batch B (drawn without replacement) maps psi to
    (1 - eta h_B) psi; averaged over all batches, E[(1 - eta h_B)^2] equals Eq. 1's LHS."""
    h = np.random.default_rng(1).uniform(2.0, 6.0, 9)
    n, s, eta = 9, 3, 0.3
    factors = [(1 - eta * h[list(b)].mean()) ** 2 for b in itertools.combinations(range(n), s)]
    assert np.mean(factors) == pytest.approx(eq1_lhs(eta, h.mean(), h.var(), n, s), rel=1e-12)


def test_curvature_along_mean_is_the_rayleigh_quotient_on_an_mlp():
    rng = np.random.default_rng(2)
    model, batch = tanh_mlp(rng)
    loss_fn = classification_loss(model, bn_mode="inference")
    hess = dense_hessian(model.trainable_variables, loss_fn, [batch])
    v = rng.standard_normal(hess.shape[0])
    v /= np.linalg.norm(v)
    curv = CurvatureAlong(model.trainable_variables, loss_fn)([batch], v)
    assert curv.values.shape == (int(batch[0].shape[0]),)
    assert curv.mean == pytest.approx(v @ hess @ v, rel=1e-9)
    # Reused across directions (measurements) without retracing.
    along = CurvatureAlong(model.trainable_variables, loss_fn)
    for u in (v, rng.standard_normal(v.shape)):
        u = u / np.linalg.norm(u)
        assert along([batch], u).mean == pytest.approx(u @ hess @ u, rel=1e-9)
    assert along.traces == 1


def per_example_dense_curvatures(variables, loss_fn, batch, e):
    """e^T H_i e from each example's dense Hessian (a batch of one example each)."""
    n = int(batch[1].shape[0])
    out = []
    for i in range(n):
        example = tf.nest.map_structure(lambda t, i=i: t[i : i + 1], batch)
        out.append(e @ dense_hessian(variables, loss_fn, [example]) @ e)
    return np.array(out)


@pytest.mark.parametrize("problem", ["tanh_mlp", "bn_cnn/inference", "bn_cnn/batch"])
def test_taylor_and_reverse_modes_equal_the_dense_per_example_curvatures(problem):
    """Taylor mode (a FunctionalLoss: the Keras classification loss) and reverse mode (the same
    loss as a plain callable) against e^T H_i e of each example's dense Hessian, float64
    (relative error <= 1e-9). BatchNorm with batch statistics couples the examples: H_i is then
    the curvature of l_i as a function of theta through the batch's statistics, computed on
    the whole batch, so the dense reference is only taken for the other problems."""
    rng = np.random.default_rng(5)
    if problem == "tanh_mlp":
        model, batch = tanh_mlp(rng, n=6)
        bn_mode = "inference"
    else:
        model, batch = bn_cnn(rng, n=6)
        bn_mode = problem.split("/")[1]
    variables = model.trainable_variables
    loss_fn = classification_loss(model, bn_mode=bn_mode)
    dim = sum(int(np.prod(v.shape)) for v in variables)
    e = rng.standard_normal(dim)
    e /= np.linalg.norm(e)
    taylor = CurvatureAlong(variables, loss_fn)
    reverse = CurvatureAlong(variables, lambda b: loss_fn(b))
    assert (taylor.mode, reverse.mode) == ("taylor", "reverse")
    a, b = taylor([batch], e).values, reverse([batch], e).values
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * np.abs(b).max())
    if bn_mode == "inference":
        ref = per_example_dense_curvatures(variables, loss_fn, batch, e)
        np.testing.assert_allclose(a, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())


def test_taylor_mode_falls_back_to_reverse_mode_through_a_while_loop():
    """Forward mode cannot trace the while loop of a rolled LSTM: the first call switches to
    reverse mode for good, with the same numbers (mean = the Rayleigh quotient, float64)."""
    rng = np.random.default_rng(6)
    # D = 58: the dense reference takes one while-loop pass per row.
    model, batch = embedding_lstm(rng, vocab=6, embed=2, units=2, unroll=False)
    loss_fn = classification_loss(model, bn_mode="inference")
    along = CurvatureAlong(model.trainable_variables, loss_fn)
    assert along.mode == "taylor"
    hess = dense_hessian(model.trainable_variables, loss_fn, [batch], use_pfor=False)
    v = rng.standard_normal(hess.shape[0])
    v /= np.linalg.norm(v)
    assert along([batch], v).mean == pytest.approx(v @ hess @ v, rel=1e-9)
    assert along.mode == "reverse"


def test_delta_loss_restores_parameters_exactly():
    rng = np.random.default_rng(3)
    model, batch = tanh_mlp(rng)
    loss_fn = classification_loss(model, bn_mode="inference")
    before = [w.numpy().copy() for w in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(loss_fn(batch))
    grads = tape.gradient(loss, model.trainable_variables)
    update = -0.5 * tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
    delta_loss = DeltaLoss(model.trainable_variables, loss_fn)
    dl = delta_loss(batch, update)
    for b, w in zip(before, model.trainable_variables, strict=True):
        assert np.array_equal(b, w.numpy())
    # Manual: apply the step, measure, undo.
    for w, g in zip(model.trainable_variables, grads, strict=True):
        w.assign_sub(0.5 * g)
    after = float(tf.reduce_mean(loss_fn(batch)))
    assert dl == pytest.approx(float(loss) - after, rel=1e-12)
    assert dl > 0  # a small gradient step decreases the loss
    assert delta_loss(batch, 2 * update) != dl  # traced once, reused with another update


def test_bad_input():
    rng = np.random.default_rng(4)
    theta, loss_fn, batch, e, _ = quadratic_problem(rng)
    with pytest.raises(ValueError, match="direction: must be a finite, non-zero"):
        CurvatureAlong([theta], loss_fn)([batch], np.zeros(6))
    with pytest.raises(ValueError, match="direction: expected a flat vector of length 6"):
        CurvatureAlong([theta], loss_fn)([batch], np.ones(5))
    with pytest.raises(ValueError, match="batches: the sample is empty"):
        CurvatureAlong([theta], loss_fn)([], e)
    with pytest.raises(ValueError, match="update: expected a flat vector"):
        DeltaLoss([theta], loss_fn)(batch, np.ones(2))

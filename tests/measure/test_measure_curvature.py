"""tfbreak.Curvature: one object for H and K of a Keras classifier on its data, against the
explicit dense matrices (float64: products 1e-10, eigenvalues 1e-8 relative)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dense_reference import dense_hessian

import tfbreak
from tfbreak.curvature import classification_loss

RNG = np.random.default_rng(0)
X = RNG.standard_normal((60, 4))
Y = RNG.integers(0, 3, 60).astype(np.int32)


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,), dtype="float64"),
            keras.layers.Dense(6, activation="tanh", dtype="float64"),
            keras.layers.Dense(3, activation="softmax", dtype="float64"),
        ]
    )


def test_hessian_and_covariance_of_the_whole_data():
    model = _model()
    c = tfbreak.Curvature(model, (X, Y), sample=60, lanczos_tol=1e-10, lanczos_max_iter=60)
    loss_fn = classification_loss(model, bn_mode="inference")
    h = dense_hessian(model.trainable_variables, loss_fn, [(tf.constant(X), tf.constant(Y))])
    v = RNG.standard_normal(h.shape[0])
    assert np.linalg.norm(c.hessian.matvec(v) - h @ v) <= 1e-10 * np.linalg.norm(h @ v)
    top = c.top_eigenvalues(3)
    np.testing.assert_allclose(top.eigenvalues, np.linalg.eigvalsh(h)[::-1][:3], rtol=1e-8)
    trace = c.trace()
    assert abs(trace.mean - np.trace(h)) <= 4 * trace.stderr
    grads = c.gradients.per_example((tf.constant(X), tf.constant(Y))).numpy()
    d = grads - grads.mean(0)
    k = d.T @ d / 60
    assert c.per_example is not None  # M = 1 from per-layer factors (softmax model)
    spectrum = c.covariance_spectrum(L=60, M=1)
    n = min(59, k.shape[0])  # at most L - 1 and D non-zero eigenvalues
    ref = np.linalg.eigvalsh(k)[::-1][:n]
    np.testing.assert_allclose(spectrum.eigenvalues[:n], ref, rtol=1e-8, atol=1e-12 * ref[0])
    assert c.density().nodes


def test_data_as_fit_takes_it():
    """A batched tf.data.Dataset is unbatched (the model's input rank tells); its Hessian on
    the same examples equals that of the arrays."""
    model = _model()
    v = RNG.standard_normal(sum(int(np.prod(w.shape)) for w in model.trainable_variables))
    arrays = tfbreak.Curvature(model, (X, Y), sample=60).hessian.matvec(v)
    batched = tf.data.Dataset.from_tensor_slices((X, Y)).batch(16)
    hv = tfbreak.Curvature(model, batched, sample=60).hessian.matvec(v)
    np.testing.assert_allclose(hv, arrays, rtol=1e-12)


def test_bad_arguments_are_named():
    model = _model()
    with pytest.raises(TypeError, match="^data: expected"):
        tfbreak.Curvature(model, X)
    c = tfbreak.Curvature(model, (X, Y), sample=20)
    with pytest.raises(ValueError, match="^M: pass the mini-batch size"):
        c.covariance(L=5)
    with pytest.raises(ValueError, match="^L, M: L \\* M = 80 exceeds the 60 examples"):
        c.covariance(L=10, M=8)
    with pytest.raises(Exception, match="--k_L"):
        c.covariance(L=1, M=2)
    with pytest.raises(TypeError):
        tfbreak.Curvature(model, (X, Y), lanczos_tolerance=1e-3)  # no such setting


def test_the_adaptive_sample_is_refused_not_ignored():
    with pytest.raises(ValueError, match="hessian_target_error"):
        tfbreak.Curvature(_model(), (X, Y), hessian_target_error=0.05)

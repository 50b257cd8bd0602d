"""Per-example gradients from per-layer factors (K with M = 1) against a Python loop over
examples: the Gram matrix of the centred gradients, their inner products with a vector and their
combinations, in float64 (relative error <= 1e-12) and on SimpleCNN in float32 (to float32
rounding, <= 1e-5 of the largest entry)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dense_reference import bn_cnn, embedding_lstm, per_example_gradients_loop, tanh_mlp

from tfbreak.curvature import (
    CovarianceOperator,
    GradientFunctions,
    KerasPerExample,
    classification_loss,
    covariance_spectrum,
)
from tfbreak.models import build_model, trainable_tf_variables


def strided_conv_net(rng, n=7):
    """'same' padding with stride 2, a dilated 'valid' conv, an even kernel with 'same' padding
    and unequal strides (one more padding row after than before), a Dense on rank-3 inputs."""
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    f64 = {"dtype": "float64"}
    model = keras.Sequential(
        [
            keras.Input((9, 9, 2), dtype="float64"),
            keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="tanh", **f64),
            keras.layers.Conv2D(4, 2, dilation_rate=2, **f64),
            keras.layers.Conv2D(4, (2, 3), strides=(1, 2), padding="same", **f64),  # odd pads
            keras.layers.Reshape((-1, 4), **f64),
            keras.layers.Dense(5, activation="tanh", **f64),
            keras.layers.Flatten(**f64),
            keras.layers.Dense(3, **f64),
        ]
    )
    x = rng.standard_normal((n, 9, 9, 2))
    y = rng.integers(0, 3, n).astype(np.int32)
    return model, (tf.constant(x), tf.constant(y))


def check_against_loop(model, batch, rtol):
    loss_fn = classification_loss(model, bn_mode="inference")
    variables = trainable_tf_variables(model)
    assert KerasPerExample.supports(loss_fn, variables)
    factors = KerasPerExample(loss_fn, variables).factors(batch)
    grads = per_example_gradients_loop(variables, loss_fn, batch).astype(np.float64)
    dev = grads - grads.mean(0)
    ref = dev @ dev.T
    scale = np.abs(ref).max()
    np.testing.assert_allclose(factors.gram(), ref, rtol=0, atol=rtol * scale)
    g = np.random.default_rng(0).standard_normal(grads.shape[1])
    np.testing.assert_allclose(factors.dots(g), dev @ g, rtol=0, atol=rtol * np.abs(dev @ g).max())
    c = np.random.default_rng(1).standard_normal((2, grads.shape[0]))
    comb = np.asarray(factors.combine(c), dtype=np.float64)
    np.testing.assert_allclose(comb, c @ dev, rtol=0, atol=rtol * np.abs(c @ dev).max())
    return factors, grads


@pytest.mark.parametrize("problem", [tanh_mlp, bn_cnn, strided_conv_net])
def test_factors_equal_the_loop_float64(problem):
    """Dense (rank-2 and rank-3 inputs), Conv2D ('same'/'valid', strides, dilation) and
    BatchNorm with moving statistics."""
    model, batch = problem(np.random.default_rng(2))
    check_against_loop(model, batch, rtol=1e-12)


def test_factors_equal_the_loop_float32_simple_cnn_and_give_the_same_spectrum():
    """The paper's SimpleCNN (Fashion-MNIST shapes, float32): equal to float32 rounding, and K's
    spectrum from the factors equals the one from the stacked loop gradients."""
    model = build_model("simple_cnn", num_classes=10, input_shape=(28, 28, 1), seed=0)
    rng = np.random.default_rng(3)
    x = tf.constant(rng.uniform(0, 1, (6, 28, 28, 1)).astype(np.float32))
    batch = (x, tf.constant(rng.integers(0, 10, 6).astype(np.int32)))
    factors, grads = check_against_loop(model, batch, rtol=1e-5)
    stacked = covariance_spectrum(CovarianceOperator(list(grads.astype(np.float32)), M=1))
    factored = covariance_spectrum(CovarianceOperator.from_set(factors, M=1))
    top = stacked.eigenvalues[0]
    np.testing.assert_allclose(
        factored.eigenvalues, stacked.eigenvalues, rtol=1e-5, atol=1e-9 * top
    )
    assert factored.rank == stacked.rank == 5


def test_traced_once_and_gathered_like_vectorized_map():
    rng = np.random.default_rng(4)
    model, batch = tanh_mlp(rng, n=12)
    loss_fn = classification_loss(model, bn_mode="inference")
    per_example = KerasPerExample(loss_fn, model.trainable_variables)
    for n in (12, 8):
        sub = tf.nest.map_structure(lambda t, n=n: t[:n], batch)
        vmap = GradientFunctions(model.trainable_variables, loss_fn).per_example(sub).numpy()
        dev = vmap - vmap.mean(0)
        np.testing.assert_allclose(per_example.factors(sub).gram(), dev @ dev.T, rtol=1e-12)
    assert per_example.traces == 1


def test_supports_only_what_it_can_factor():
    rng = np.random.default_rng(5)
    model, _ = bn_cnn(rng)
    variables = model.trainable_variables
    assert KerasPerExample.supports(classification_loss(model, bn_mode="inference"), variables)
    # Batch statistics couple the examples; a plain callable has no model; a subset of the
    # variables is not what the model's factors cover; an LSTM is not a supported layer.
    assert not KerasPerExample.supports(classification_loss(model, bn_mode="batch"), variables)
    loss_fn = classification_loss(model, bn_mode="inference")
    assert not KerasPerExample.supports(lambda b: loss_fn(b), variables)
    assert not KerasPerExample.supports(loss_fn, variables[:-1])
    lstm, _ = embedding_lstm(rng)
    lstm_loss = classification_loss(lstm, bn_mode="inference")
    assert not KerasPerExample.supports(lstm_loss, lstm.trainable_variables)

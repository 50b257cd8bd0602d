"""The operator measured is the model's deterministic loss: dropout and noise layers off,
BatchNorm per bn_mode, float32 whatever the mixed-precision policy, the compiled loss's label
smoothing included (checked against a dense float64 Hessian of the smoothed loss), options it
cannot reproduce refused in one line."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from dense_reference import dense_hessian

import tfbreak
from tfbreak.curvature import classification_loss
from tfbreak.curvature.keras_loss import measurement_modes, modes_line

RNG = np.random.default_rng(0)
X = RNG.standard_normal((64, 6)).astype(np.float32)
Y = RNG.integers(0, 3, 64).astype(np.int32)
LANCZOS = dict(sample=64, lanczos_tol=1e-7, lanczos_max_iter=40, seed=0)


def _model(noise: bool, policy: str = "float32", head: str | None = None) -> keras.Model:
    keras.mixed_precision.set_global_policy(policy)
    try:
        layers = [keras.Input((6,)), keras.layers.Dense(8, activation="tanh")]
        layers.append(keras.layers.BatchNormalization())
        if noise:
            layers += [keras.layers.Dropout(0.3), keras.layers.GaussianNoise(0.5)]
        layers.append(keras.layers.Dense(3, dtype=head))
        return keras.Sequential(layers)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _lambda_1(model, bn_mode: str) -> float:
    curvature = tfbreak.Curvature(model, (X, Y), bn_mode=bn_mode, **LANCZOS)
    return curvature.top_eigenvalues(1).eigenvalues[0]


def _loss_and_gradient(model, bn_mode: str) -> np.ndarray:
    """The measured per-example losses and the gradient of their mean, concatenated."""
    loss_fn = classification_loss(model, bn_mode=bn_mode)
    with tf.GradientTape() as tape:
        losses = loss_fn((tf.constant(X), tf.constant(Y)))
        mean = tf.reduce_mean(losses)
    grads = tape.gradient(mean, model.trainable_variables)
    return np.concatenate([losses.numpy().ravel()] + [g.numpy().ravel() for g in grads])


@pytest.mark.parametrize("bn_mode", ["inference", "batch"])
def test_dropout_and_noise_are_off_while_measuring(bn_mode):
    """With Dropout(0.3) and GaussianNoise: two measurements at the same weights are identical
    and equal those of the model without the noise layers (losses and gradients bit for bit,
    lambda_1 too); BatchNorm as bn_mode says, its moving statistics untouched."""
    keras.utils.set_random_seed(0)
    clean, noisy = _model(noise=False), _model(noise=True)
    noisy.set_weights(clean.get_weights())
    moving = [v.numpy().copy() for v in noisy.non_trainable_variables]
    first = _loss_and_gradient(noisy, bn_mode)
    np.testing.assert_array_equal(first, _loss_and_gradient(noisy, bn_mode))
    np.testing.assert_array_equal(first, _loss_and_gradient(clean, bn_mode))
    assert _lambda_1(noisy, bn_mode) == _lambda_1(clean, bn_mode)
    for before, v in zip(moving, noisy.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(before, v.numpy())
    if bn_mode == "batch":  # batch statistics do differ from the moving ones
        assert not np.array_equal(first, _loss_and_gradient(clean, "inference"))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("head", [None, "float32"])
def test_mixed_precision_measures_in_float32(policy, head):
    """Under a mixed policy, with a float16/bfloat16 or a float32 head, the measured loss and
    gradient are the float32 model's (rel 1e-6, the float32 operator's precision; in practice
    bit for bit), lambda_1 too, and the layers' policies are left as they were."""
    keras.utils.set_random_seed(0)
    reference = _model(noise=False)
    mixed = _model(noise=False, policy=policy, head=head)
    mixed.set_weights(reference.get_weights())
    for bn_mode in ("inference", "batch"):
        np.testing.assert_allclose(
            _loss_and_gradient(mixed, bn_mode), _loss_and_gradient(reference, bn_mode), rtol=1e-6
        )
    if head is None:
        assert _lambda_1(mixed, "batch") == pytest.approx(_lambda_1(reference, "batch"), rel=1e-6)
    assert mixed.layers[0].compute_dtype == policy.removeprefix("mixed_")
    loss = classification_loss(mixed, bn_mode="auto")
    modes = measurement_modes(mixed, loss, "auto")
    assert modes["measurement_dtype"] == "float32" and modes["dtype_policy"] == policy
    assert f"float32 (model policy {policy})" in modes_line(modes)


def _smoothed_dense_lambda(model, x, targets) -> float:
    """lambda_1 of the dense float64 Hessian of the mean of -sum_k y'_k log p_k (softmax) or
    -y' log s - (1 - y') log(1 - s) (sigmoid), with the smoothed targets y' given: the model's
    layers applied by hand, its last one without its activation (the logits z)."""
    hidden, last = model.layers
    t = tf.constant(targets)

    def loss_fn(batch):
        z = tf.matmul(hidden(batch[0]), last.kernel) + last.bias
        if targets.ndim == 1:
            z = tf.reshape(z, [-1])
            return -(t * tf.math.log_sigmoid(z) + (1 - t) * tf.math.log_sigmoid(-z))
        return -tf.reduce_sum(t * tf.nn.log_softmax(z), axis=-1)

    h = dense_hessian(model.trainable_variables, loss_fn, [(tf.constant(x), None)])
    return float(np.linalg.eigvalsh(h)[-1])


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
def test_label_smoothing_is_the_dense_hessian_of_the_smoothed_loss(link):
    """A model compiled with label_smoothing=0.3: lambda_1 equals that of the dense float64
    Hessian of the smoothed loss (rel 1e-8) and differs from the unsmoothed one."""
    keras.utils.set_random_seed(0)
    x = X.astype(np.float64)
    units = 3 if link == "softmax" else 1
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="float64"),
            keras.layers.Dense(5, activation="tanh", dtype="float64"),
            keras.layers.Dense(units, activation=link, dtype="float64"),
        ]
    )
    if link == "softmax":
        labels = np.eye(3)[Y]
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.3)
        smoothed = labels * 0.7 + 0.3 / 3
    else:
        labels = (Y > 0).astype(np.float64)
        loss = keras.losses.BinaryCrossentropy(label_smoothing=0.3)
        smoothed = labels * 0.7 + 0.15
    model.compile(optimizer="sgd", loss=loss)
    settings = dict(sample=64, lanczos_tol=1e-10, lanczos_max_iter=60)
    measured = tfbreak.Curvature(model, (x, labels), **settings).top_eigenvalues(1).eigenvalues[0]
    assert measured == pytest.approx(_smoothed_dense_lambda(model, x, smoothed), rel=1e-8)
    assert measured != pytest.approx(_smoothed_dense_lambda(model, x, labels), rel=1e-3)
    model.compile(optimizer="sgd", loss=type(loss)())
    plain = tfbreak.Curvature(model, (x, labels), **settings).top_eigenvalues(1).eigenvalues[0]
    assert plain == pytest.approx(_smoothed_dense_lambda(model, x, labels), rel=1e-8)


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        (
            keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum"),
            r"^loss_fn: the model's compiled sparse_categorical_crossentropy has reduction='sum'",
        ),
        (
            keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
            r"has ignore_class=0 \(examples of that class would be left out\)",
        ),
        (keras.losses.CategoricalCrossentropy(axis=0), r"has axis=0"),
        ("mse", r"^loss_fn: the model is compiled with the loss 'mse'"),
    ],
    ids=["reduction", "ignore_class", "axis", "mse"],
)
def test_compiled_options_tfbreak_cannot_reproduce_are_one_line(loss, message):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=loss)
    with pytest.raises(ValueError, match=message) as err:
        tfbreak.Curvature(model, (X, Y), sample=16)
    assert "\n" not in str(err.value) and "pass loss_fn=" in str(err.value)


def test_regularization_losses_left_out_are_said():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1))]
    )
    loss = classification_loss(model, bn_mode="auto")
    modes = measurement_modes(model, loss, "auto")
    assert modes["regularization_losses"] == "excluded"
    assert modes["noise_layers"] == "off" and modes["bn_mode"] == "inference"
    assert "regularization losses excluded" in modes_line(modes)


def test_compiled_loss_weights_scale_the_measured_loss():
    """compile(loss_weights=0.5): the loss fit minimises is half the cross-entropy, and so are
    the measured per-example losses (hence H, K and their spectra)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batch = (tf.constant(X), tf.constant(Y))
    model.compile(optimizer="sgd", loss=loss)
    plain = classification_loss(model, bn_mode="auto")(batch).numpy()
    model.compile(optimizer="sgd", loss=loss, loss_weights=0.5)
    weighted = classification_loss(model, bn_mode="auto")
    np.testing.assert_allclose(weighted(batch).numpy(), 0.5 * plain, rtol=1e-7)
    assert "loss_weights=0.5" in modes_line(measurement_modes(model, weighted, "auto"))

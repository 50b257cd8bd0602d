"""The loss comes from the model: whatever its output convention (logits, a softmax layer or
activation, a compiled loss with from_logits either way, one-hot labels), lambda_1(H), Tr(K)
(per-example gradients by the loop, and for Keras 3 also from per-layer factors), Delta L and
the per-example curvatures along a direction (Eq. 1's s^2; Taylor mode for Keras 3) equal those
of the logits model with identical weights (float64: 1e-10 relative), for Keras 3 and tf_keras;
unreadable conventions are one-line errors naming loss_fn."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.sparse.linalg import eigsh

from tfbreak.curvature import (
    CovarianceOperator,
    CurvatureAlong,
    DeltaLoss,
    GradientFunctions,
    HessianOperator,
    KerasPerExample,
    classification_loss,
    covariance_spectrum,
)
from tfbreak.curvature.keras_loss import output_convention

RTOL = 1e-10
RNG = np.random.default_rng(0)
X = RNG.standard_normal((24, 5))
Y = RNG.integers(0, 3, 24).astype(np.int32)


def _keras(api):
    if api == "keras":
        import keras

        return keras
    return pytest.importorskip("tf_keras")


def _model(api, head: str):
    """A float64 MLP 5-8-3 with fixed weights; `head` is how it ends."""
    k = _keras(api)
    layers = [k.layers.Dense(8, activation="tanh", dtype="float64")]
    if head == "softmax activation":
        layers.append(k.layers.Dense(3, activation="softmax", dtype="float64"))
    else:
        layers.append(k.layers.Dense(3, dtype="float64"))
    if head == "softmax layer":
        layers.append(k.layers.Softmax(dtype="float64"))
    if head == "activation layer":
        layers.append(k.layers.Activation("softmax", dtype="float64"))
    model = k.Sequential([k.Input((5,), dtype="float64"), *layers])
    rng = np.random.default_rng(1)
    for v in model.trainable_variables:
        v.assign(rng.standard_normal(v.shape) * 0.7)
    return model


def _compile(model, api, loss):
    k = _keras(api)
    losses = {
        "logits": k.losses.SparseCategoricalCrossentropy(from_logits=True),
        "probabilities": "sparse_categorical_crossentropy",
        "one-hot": k.losses.CategoricalCrossentropy(from_logits=False),
    }
    model.compile(optimizer="sgd", loss=losses[loss])
    return model


def _measures(model, labels):
    loss_fn = classification_loss(model, bn_mode="inference")
    batch = (tf.constant(X), tf.constant(labels))
    variables = model.trainable_variables
    h = HessianOperator(variables, loss_fn, [batch], mode="reverse_over_reverse")
    lam = eigsh(h.as_linear_operator(), k=1, which="LA", tol=1e-12)[0][0]
    grads = GradientFunctions(variables, loss_fn)
    trace_k = covariance_spectrum(CovarianceOperator.per_example(grads, batch, on_host=False)).trace
    trace_factored = trace_k  # tf_keras: no per-layer factors
    if KerasPerExample.supports(loss_fn, variables):
        factors = KerasPerExample(loss_fn, variables).factors(batch)
        trace_factored = covariance_spectrum(CovarianceOperator.from_set(factors, M=1)).trace
    update = -0.3 * grads.minibatch(batch)
    curvature_along = CurvatureAlong(variables, loss_fn)
    along = curvature_along([batch], update)
    assert curvature_along.mode == ("taylor" if hasattr(model, "stateless_call") else "reverse")
    delta = DeltaLoss(variables, loss_fn)(batch, update)
    return np.array([lam, trace_k, trace_factored, delta, along.mean, along.s2])


CASES = [
    ("logits", None, "sparse"),
    ("softmax activation", None, "sparse"),
    ("softmax layer", None, "sparse"),
    ("activation layer", None, "sparse"),
    ("logits", "logits", "sparse"),
    ("softmax activation", "probabilities", "sparse"),
    ("softmax activation", "one-hot", "one-hot"),
]


@pytest.mark.parametrize("api", ["keras", "tf_keras"])
@pytest.mark.parametrize("head,compiled,labels", CASES)
def test_every_convention_measures_the_logits_model(api, head, compiled, labels):
    reference = _measures(_model(api, "logits"), Y)
    model = _model(api, head)
    if compiled:
        _compile(model, api, compiled)
    y = np.eye(3)[Y] if labels == "one-hot" else Y
    got = _measures(model, y)
    np.testing.assert_allclose(got, reference, rtol=RTOL)
    assert reference[0] > 0 and reference[1] > 0 and reference[3] != 0 and reference[5] > 0


def test_conventions_are_read_from_compile_then_from_the_last_activation():
    import keras

    assert output_convention(_model("keras", "logits")).probabilities is False
    assert output_convention(_model("keras", "softmax layer")).probabilities is True
    compiled = _compile(_model("keras", "softmax activation"), "keras", "logits")
    assert output_convention(compiled).probabilities is False  # the compiled loss wins
    binary = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    assert output_convention(binary).link == "sigmoid"


def test_unreadable_conventions_are_one_line_errors_naming_loss_fn():
    import keras

    flat = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="^loss_fn: cannot tell whether"):
        output_convention(flat)
    mse = _model("keras", "logits")
    mse.compile(loss="mse")
    with pytest.raises(ValueError, match="^loss_fn: the model is compiled with the loss 'mse'"):
        output_convention(mse)
    # Compiled for probabilities, but the output is not a softmax: logits cannot be recovered.
    wrong = _compile(_model("keras", "logits"), "keras", "probabilities")
    loss_fn = classification_loss(wrong, bn_mode="inference")
    with pytest.raises(ValueError, match="^loss_fn: the model outputs probabilities"):
        loss_fn((tf.constant(X), tf.constant(Y)))


def test_binary_sigmoid_model_matches_its_two_logit_softmax_twin():
    """A sigmoid output s(z) is the softmax of the logits (0, z): both measure the same."""
    import keras

    inputs = keras.Input((5,), dtype="float64")
    sig = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", dtype="float64")(inputs))
    two = keras.Sequential(
        [keras.Input((5,), dtype="float64"), keras.layers.Dense(2, dtype="float64")]
    )
    rng = np.random.default_rng(2)
    w, b = rng.standard_normal((5, 1)), rng.standard_normal(1)
    sig.set_weights([w, b])
    two.set_weights([np.concatenate([np.zeros((5, 1)), w], 1), np.concatenate([[0.0], b])])
    y = (X[:, 0] > 0).astype(np.int32)
    for model in (sig, two):
        loss = classification_loss(model, bn_mode="inference")((tf.constant(X), tf.constant(y)))
        if model is sig:
            ref = loss.numpy()
    np.testing.assert_allclose(loss.numpy(), ref, rtol=1e-12)


def test_auto_bn_mode_measures_batchnorm_models_with_batch_statistics():
    """bn_mode='auto' is 'batch' for a BatchNorm model (early in training the moving averages
    are far from the data: measured on DenseNet-121, 8 images, lr 0.1, the inference-mode loss
    was 66-316 for steps 1-5 while training's was 3.2-0.06) and 'inference' without BatchNorm;
    the moving statistics are never written."""
    import keras

    from tfbreak.curvature.keras_loss import resolve_bn_mode
    from tfbreak.models import build_model

    model = build_model("simple_cnn_bn", num_classes=10, input_shape=(12, 12, 3), seed=0)
    assert resolve_bn_mode(model, "auto") == "batch"
    assert resolve_bn_mode(_model("keras", "logits"), "auto") == "inference"
    rng = np.random.default_rng(3)
    x = tf.constant(rng.uniform(0, 1, (16, 12, 12, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, 16).astype(np.int32))
    optimizer = keras.optimizers.SGD(0.5)
    for _ in range(3):  # training updates the moving statistics only a little (momentum 0.99)
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True), True)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    auto = classification_loss(model, bn_mode="auto")((x, y))
    batch_stats, _ = model.stateless_call(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        x,
        training=True,
    )
    expected = keras.losses.sparse_categorical_crossentropy(y, batch_stats, from_logits=True)
    np.testing.assert_allclose(auto.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    inference = classification_loss(model, bn_mode="inference")((x, y))
    assert abs(float(tf.reduce_mean(inference)) - float(tf.reduce_mean(auto))) > 0.1
    for b, v in zip(before, model.non_trainable_variables, strict=True):
        assert np.array_equal(b, v.numpy())

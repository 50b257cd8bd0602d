"""Models of appendix D: forward pass, one SGD step, Hessian-vector products, parameter counts."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbreak.catalog import MODELS
from tfbreak.models import (
    MODEL_NAMES,
    batchnorm_gammas,
    build_model,
    trainable_tf_variables,
    weight_decay_variables,
)
from tfbreak.models.variables import WEIGHT_DECAY_POLICIES

NUM_CLASSES = 10

# name -> (options, input_shape, example batch factory)
_IMAGE = (8, 8, 3)


def _images(shape, n=4, seed=0):
    return tf.random.stateless_uniform((n, *shape), seed=[seed, 1])


def _ids(length, vocab, n=4, seed=0):
    return tf.random.stateless_uniform((n, length), [seed, 2], maxval=vocab, dtype=tf.int32)


def _labels(n=4, k=NUM_CLASSES, seed=0):
    return tf.random.stateless_uniform((n,), [seed, 3], maxval=k, dtype=tf.int32)


CASES = {
    "simple_cnn": ({}, (16, 16, 3), lambda: _images((16, 16, 3))),
    "simple_cnn_bn": ({}, (16, 16, 3), lambda: _images((16, 16, 3))),
    "resnet32": ({}, _IMAGE, lambda: _images(_IMAGE)),
    "mlp": ({}, (28, 28, 1), lambda: _images((28, 28, 1))),
    "lstm": ({"vocab_size": 50, "embedding_dim": 8, "units": 6}, (7,), lambda: _ids(7, 50)),
    "densenet121": ({}, (32, 32, 3), lambda: _images((32, 32, 3), n=2)),
}


def _loss(model, x, y, training=False):
    logits = model(x, training=training)
    return tf.reduce_mean(
        tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    )


def _dense(grads):
    """Embedding gradients arrive as tf.IndexedSlices; the measurement core must densify them."""
    return [tf.convert_to_tensor(g) for g in grads]


def _hvp(model, x, y, variables, vector):
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            loss = _loss(model, x, y)
        grads = _dense(inner.gradient(loss, variables))
        dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vector, strict=True)])
    return _dense(outer.gradient(dot, variables))


def _random_like(variables, seed=7):
    return [
        tf.random.stateless_normal(v.shape, [seed, i], dtype=v.dtype)
        for i, v in enumerate(variables)
    ]


def test_model_names_and_unknown_name():
    for spec in MODELS.values():  # every record names an importable builder and a policy
        assert callable(spec.build_function()), spec.name
        assert spec.weight_decay in WEIGHT_DECAY_POLICIES, spec.name
    assert set(MODEL_NAMES) == {
        "simple_cnn",
        "simple_cnn_bn",
        "resnet32",
        "lstm",
        "mlp",
        "densenet121",
        "bert",
    }
    with pytest.raises(ValueError, match="simple_cnn.*resnet32"):
        build_model("vgg16", num_classes=10)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_sgd_step_and_hvp(name):
    options, shape, make_x = CASES[name]
    model = build_model(name, num_classes=NUM_CLASSES, input_shape=shape, seed=0, **options)
    x = make_x()
    y = _labels(int(x.shape[0]))
    logits = model(x, training=False)
    assert logits.shape == (x.shape[0], NUM_CLASSES)
    assert np.isfinite(logits.numpy()).all()
    # Logits, not probabilities: rows do not sum to one.
    assert not np.allclose(tf.reduce_sum(logits, -1).numpy(), 1.0)

    variables = trainable_tf_variables(model)
    assert all(isinstance(v, tf.Variable) for v in variables)
    assert sum(v.shape.num_elements() for v in variables) == sum(
        v.shape.num_elements() for v in model.trainable_variables
    )

    # Hessian-vector product via nested GradientTape, inference-mode BatchNorm. Done before the
    # SGD step: one training step at batch size 2 leaves DenseNet's moving statistics unwarmed
    # and its inference-mode forward pass overflows (NaN) - see the report.
    vector = _random_like(variables)
    hv = _hvp(model, x, y, variables, vector)
    assert all(h is not None for h in hv)
    flat = np.concatenate([h.numpy().ravel() for h in hv])
    assert np.isfinite(flat).all() and np.abs(flat).max() > 0
    if name != "densenet121":  # symmetry <u, Hv> == <v, Hu> (skipped for time on DenseNet)
        u = _random_like(variables, seed=11)
        hu = _hvp(model, x, y, variables, u)
        uhv = sum(float(tf.reduce_sum(a * b)) for a, b in zip(u, hv, strict=True))
        vhu = sum(float(tf.reduce_sum(a * b)) for a, b in zip(vector, hu, strict=True))
        assert uhv == pytest.approx(vhu, rel=2e-3, abs=1e-4)

    # One SGD step with a plain GradientTape and assign_sub (training mode: batch statistics).
    # DenseNet's last blocks see 1 x 1 feature maps of 32 x 32 inputs, where batch statistics of
    # 2 images normalise every channel to +-1: a loss flat almost everywhere, so its step is
    # checked with the moving statistics (a smooth loss) and sized for a 1% first-order drop.
    training = name != "densenet121"
    before = _loss(model, x, y, training=training).numpy()
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y, training=training)
    grads = _dense(tape.gradient(loss, variables))
    assert all(g is not None for g in grads)
    lr = {"lstm": 0.5}.get(name, 0.05)
    if name == "densenet121":
        lr = 0.01 * float(before) / sum(float(tf.reduce_sum(g * g)) for g in grads)
    for v, g in zip(variables, grads, strict=True):
        v.assign_sub(lr * g)
    after = _loss(model, x, y, training=training).numpy()
    assert after < before


def test_simple_cnn_parameter_count_and_layout():
    """Keras cifar10_cnn layout (conv 'same' then 'valid'), dense 128: 361,898 parameters."""
    model = build_model("simple_cnn", num_classes=10)
    assert model.count_params() == 361_898
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64]
    assert [c.padding for c in convs] == ["same", "valid", "same", "valid"]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert batchnorm_gammas(model) == []
    bn = build_model("simple_cnn_bn", num_classes=10)
    bns = [layer for layer in bn.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 5
    (gamma,) = batchnorm_gammas(bn)
    assert gamma is bns[-1].gamma.value and gamma.shape == (128,)


def test_resnet32_parameter_count_and_weight_decay():
    """He et al. (2015) Table 6: ResNet-32 has 0.46M parameters (option-A shortcuts)."""
    model = build_model("resnet32", num_classes=10)
    trainable = sum(v.shape.num_elements() for v in model.trainable_variables)
    assert trainable == 464_154
    assert round(trainable / 1e6, 2) == 0.46
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 31  # 1 stem + 3 stages x 5 blocks x 2; + 1 dense = 32 layers
    decayed = weight_decay_variables(model)
    assert {id(v) for v in decayed} == {id(c.kernel.value) for c in convs}
    (gamma,) = batchnorm_gammas(model)
    assert gamma.shape == (64,)


def test_densenet121_parameter_count():
    """DenseNet-121 with 1000 classes: ~8.0M parameters (independent of the input size)."""
    model = build_model("densenet121", num_classes=1000, input_shape=(32, 32, 3))
    assert model.count_params() == 8_062_504  # incl. 83,648 BatchNorm moving statistics
    trainable = sum(v.shape.num_elements() for v in model.trainable_variables)
    assert trainable == 7_978_856
    assert round(trainable / 1e6, 1) == 8.0
    assert len(batchnorm_gammas(model)) == 1


def test_weight_decay_kernels_policy():
    model = build_model("lstm", num_classes=2, vocab_size=30, embedding_dim=4, units=3)
    names = sorted(v.name.split("/")[-1].split(":")[0] for v in weight_decay_variables(model))
    assert names == ["embeddings", "kernel", "kernel", "recurrent_kernel"]
    mlp = build_model("mlp", num_classes=10)
    assert len(weight_decay_variables(mlp)) == 3
    assert all(v.shape.rank == 2 for v in weight_decay_variables(mlp))


def test_seed_makes_initialisation_reproducible():
    a = build_model("mlp", num_classes=10, seed=3)
    b = build_model("mlp", num_classes=10, seed=3)
    c = build_model("mlp", num_classes=10, seed=4)
    wa, wb, wc = (trainable_tf_variables(m)[0].numpy() for m in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


def _flat(tensors):
    return np.concatenate([np.asarray(t).ravel() for t in tensors])


def _fd_check(model, x, y, rel_tol):
    """Compare the nested-tape HVP with central differences of the gradient (float64).

    The direction has unit norm and the step is 1e-6: small enough that no max-pooling window
    switches its argmax (max pooling is only piecewise linear), large enough for float64.
    """
    variables = trainable_tf_variables(model)
    assert all(v.dtype == tf.float64 for v in variables)
    vector = _random_like(variables, seed=5)
    norm = np.sqrt(sum(float(tf.reduce_sum(d * d)) for d in vector))
    vector = [d / norm for d in vector]
    hv = _flat(_hvp(model, x, y, variables, vector))

    def grad():
        with tf.GradientTape() as tape:
            loss = _loss(model, x, y)
        return _flat(_dense(tape.gradient(loss, variables)))

    eps = 1e-6
    originals = [v.numpy() for v in variables]
    for v, d in zip(variables, vector, strict=True):
        v.assign_add(eps * d)
    g_plus = grad()
    for v, w0, d in zip(variables, originals, vector, strict=True):
        v.assign(w0 - eps * d.numpy())
    g_minus = grad()
    for v, w0 in zip(variables, originals, strict=True):
        v.assign(w0)
    fd = (g_plus - g_minus) / (2 * eps)
    err = np.linalg.norm(hv - fd) / np.linalg.norm(hv)
    assert err < rel_tol, err


def test_hvp_matches_finite_differences_mlp_softplus_float64():
    """Smooth (softplus) float64 MLP: relative error of HVP vs central FD < 1e-6."""
    model = build_model(
        "mlp", num_classes=3, input_shape=(5,), activation="softplus", dtype="float64", seed=1
    )
    x = tf.random.stateless_normal((6, 5), [1, 2], dtype=tf.float64)
    y = tf.constant([0, 1, 2, 0, 1, 2])
    _fd_check(model, x, y, rel_tol=1e-6)


def test_hvp_matches_finite_differences_lstm_float64():
    """LSTM (tanh/sigmoid, smooth) in float64, generic (non-cuDNN) kernel: rel. error < 1e-6."""
    model = build_model(
        "lstm",
        num_classes=2,
        input_shape=(6,),
        vocab_size=20,
        embedding_dim=4,
        units=5,
        dtype="float64",
        seed=2,
    )
    x = _ids(6, 20, n=5, seed=3)
    y = tf.constant([0, 1, 1, 0, 1])
    _fd_check(model, x, y, rel_tol=1e-6)


def test_hvp_matches_finite_differences_simple_cnn_softplus_float64():
    """Smooth SimpleCNN variant in float64: rel. error < 1e-6."""
    model = build_model(
        "simple_cnn",
        num_classes=3,
        input_shape=(10, 10, 2),
        activation="softplus",
        dtype="float64",
        dense_units=8,
        seed=4,
    )
    x = tf.random.stateless_uniform((3, 10, 10, 2), [2, 2], dtype=tf.float64)
    y = tf.constant([0, 1, 2])
    _fd_check(model, x, y, rel_tol=1e-6)


def test_the_options_checked_before_tensorflow_are_the_builders_keywords():
    """`--model_option` names are read from each builder's source without importing it."""
    import inspect

    for spec in MODELS.values():
        keywords = set(inspect.signature(spec.build_function()).parameters)
        assert spec.options() == keywords - {"num_classes", "input_shape"}, spec.name

"""Exact dense references for the curvature tests (float64, small models)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfbreak.curvature import ParameterSpace


def dense_hessian(variables, loss_fn, batches, use_pfor=True) -> np.ndarray:
    """The D x D Hessian of the mean loss over all examples, by nested tape.jacobian (pfor
    cannot vectorise the while loop of a rolled LSTM: use_pfor=False loops over rows)."""
    space = ParameterSpace(variables)
    n = sum(int(tf.nest.flatten(b)[0].shape[0]) for b in batches)

    @tf.function
    def jacobian_of_gradient():
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = tf.add_n([tf.reduce_sum(loss_fn(b)) for b in batches]) / n
            grad = space.flatten(inner.gradient(loss, space.variables))
        return outer.jacobian(grad, space.variables, experimental_use_pfor=use_pfor)

    jac = jacobian_of_gradient()
    cols = [tf.reshape(j, [space.dim, -1]) if j is not None else None for j in jac]
    cols = [
        c if c is not None else tf.zeros([space.dim, s])
        for c, s in zip(cols, space.sizes, strict=True)
    ]
    h = tf.concat(cols, axis=1).numpy()
    return 0.5 * (h + h.T)


def per_example_gradients_loop(variables, loss_fn, batch) -> np.ndarray:
    """(n, D) per-example gradients by a Python loop (the reference for vectorized_map)."""
    space = ParameterSpace(variables)
    n = int(tf.nest.flatten(batch)[0].shape[0])
    rows = []
    for i in range(n):
        example = tf.nest.map_structure(lambda t, i=i: t[i : i + 1], batch)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(loss_fn(example))
        rows.append(space.flatten(tape.gradient(loss, space.variables)).numpy())
    return np.stack(rows)


def softmax_regression(rng, n=40, d=5, classes=3):
    """Softmax regression in float64: variables, loss_fn, batch and its closed-form Hessian."""
    x = rng.standard_normal((n, d))
    y = rng.integers(0, classes, n).astype(np.int32)
    w = tf.Variable(0.5 * rng.standard_normal((d, classes)))
    b = tf.Variable(0.1 * rng.standard_normal(classes))

    def loss_fn(batch):
        xb, yb = batch
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=xb @ w + b)

    # Closed form: H = (1/n) sum_i (diag(p_i) - p_i p_i^T) kron (x~_i x~_i^T), x~ = [x; 1],
    # in the (w row-major, then b) parameter order.
    logits = x @ w.numpy() + b.numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dim = d * classes + classes
    h = np.zeros((dim, dim))
    for i in range(n):
        a = np.diag(p[i]) - np.outer(p[i], p[i])
        jac = np.zeros((classes, dim))  # d logits / d theta
        for c in range(classes):
            jac[c, c : d * classes : classes] = x[i]
            jac[c, d * classes + c] = 1.0
        h += jac.T @ a @ jac
    return [w, b], loss_fn, (tf.constant(x), tf.constant(y)), h / n


def logistic_regression(rng, n=30, d=4):
    """Binary logistic regression in float64 and its closed-form Hessian (1/n) sum p(1-p) x x^T."""
    x = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.5).astype(np.float64)
    w = tf.Variable(rng.standard_normal(d))

    def loss_fn(batch):
        xb, yb = batch
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=yb, logits=tf.linalg.matvec(xb, w))

    p = 1.0 / (1.0 + np.exp(-(x @ w.numpy())))
    h = (x * (p * (1 - p))[:, None]).T @ x / n
    return [w], loss_fn, (tf.constant(x), tf.constant(y)), h


def tanh_mlp(rng, n=24, d=6, hidden=8, classes=3):
    """A float64 tanh MLP (Keras 3)."""
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    model = keras.Sequential(
        [
            keras.Input((d,), dtype="float64"),
            keras.layers.Dense(hidden, activation="tanh", dtype="float64"),
            keras.layers.Dense(classes, dtype="float64"),
        ]
    )
    x = rng.standard_normal((n, d))
    y = rng.integers(0, classes, n).astype(np.int32)
    return model, (tf.constant(x), tf.constant(y))


def bn_cnn(rng, n=12, classes=3):
    """A float64 CNN with BatchNorm (conv -> BN -> relu -> pool -> dense)."""
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1), dtype="float64"),
            keras.layers.Conv2D(3, 3, dtype="float64"),
            keras.layers.BatchNormalization(dtype="float64"),
            keras.layers.Activation("tanh", dtype="float64"),
            keras.layers.Flatten(dtype="float64"),
            keras.layers.Dense(classes, dtype="float64"),
        ]
    )
    bn = model.layers[1]
    bn.moving_mean.assign(0.1 * rng.standard_normal(3))
    bn.moving_variance.assign(1.0 + rng.random(3))
    x = rng.standard_normal((n, 6, 6, 1))
    y = rng.integers(0, classes, n).astype(np.int32)
    return model, (tf.constant(x), tf.constant(y))


def embedding_lstm(rng, n=10, vocab=20, length=5, classes=2, unroll=False, embed=4, units=3):
    """A float64 Embedding + LSTM classifier (gradients of the embedding are IndexedSlices).

    ForwardAccumulator cannot differentiate through the while loop of a rolled LSTM: the
    forward-over-reverse HVP needs unroll=True."""
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    model = keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocab, embed, dtype="float64"),
            keras.layers.LSTM(units, dtype="float64", unroll=unroll),
            keras.layers.Dense(classes, dtype="float64"),
        ]
    )
    x = rng.integers(0, vocab, (n, length)).astype(np.int32)
    y = rng.integers(0, classes, n).astype(np.int32)
    return model, (tf.constant(x), tf.constant(y))


def dense_operator(a: np.ndarray, calls: list | None = None):
    """A dense symmetric matrix as the operator the algorithms take (scipy LinearOperator);
    every product is appended to `calls` when given."""
    from scipy.sparse.linalg import LinearOperator

    def matvec(v):
        if calls is not None:
            calls.append(1)
        return a @ np.ravel(v)

    return LinearOperator(a.shape, matvec=matvec, dtype=np.float64)


class BlockOperator:
    """A dense symmetric matrix with a block product (`matvec_block`), rounded exactly as its
    matvec so results compare bit for bit; `calls` records the number of vectors of each call."""

    def __init__(self, a: np.ndarray):
        self.a, self.shape, self.calls = a, a.shape, []

    def matvec(self, v):
        self.calls.append(1)
        return self.a @ v

    def matvec_block(self, vectors):
        self.calls.append(len(vectors))
        return np.stack([self.a @ v for v in vectors])

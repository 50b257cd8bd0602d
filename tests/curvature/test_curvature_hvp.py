"""HVP over a fixed sample vs the explicit Hessian (float64, relative error <= 1e-8)."""

import numpy as np
import pytest
import tensorflow as tf
from dense_reference import (
    bn_cnn,
    dense_hessian,
    embedding_lstm,
    logistic_regression,
    softmax_regression,
    tanh_mlp,
)

from tfbreak.curvature import HessianOperator, classification_loss
from tfbreak.curvature.modes import HVP_MODES

RTOL = 1e-8


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def split(batch, sizes):
    """The sample as uneven batches (checks the example-count weighting)."""
    out, start = [], 0
    for s in sizes:
        out.append(tf.nest.map_structure(lambda t, a=start, b=start + s: t[a:b], batch))
        start += s
    return out


def check_operator(variables, loss_fn, batches, h_ref, mode, rng):
    op = HessianOperator(variables, loss_fn, batches, mode=mode)
    for _ in range(3):
        v = rng.standard_normal(op.dim)
        assert rel_err(op.matvec(v), h_ref @ v) <= RTOL
    # Several vectors in one pass over the sample: each row is its own product.
    vectors = rng.standard_normal((3, op.dim))
    products = op.matvec_block(vectors)
    assert products.shape == (3, op.dim) and op.matvecs == 6
    for hv, v in zip(products, vectors, strict=True):
        assert rel_err(hv, h_ref @ v) <= RTOL
    return op


@pytest.mark.parametrize("mode", HVP_MODES)
@pytest.mark.parametrize("problem", [softmax_regression, logistic_regression])
def test_hvp_matches_closed_form_hessian(problem, mode):
    rng = np.random.default_rng(0)
    variables, loss_fn, batch, h_closed = problem(rng)
    n = int(batch[0].shape[0])
    batches = split(batch, [n // 2, n // 3, n - n // 2 - n // 3])
    h_jac = dense_hessian(variables, loss_fn, batches)
    assert rel_err(h_jac, h_closed) <= 1e-12
    check_operator(variables, loss_fn, batches, h_closed, mode, rng)


@pytest.mark.parametrize("mode", HVP_MODES)
def test_hvp_tanh_mlp(mode):
    rng = np.random.default_rng(1)
    model, batch = tanh_mlp(rng)
    loss_fn = classification_loss(model, bn_mode="inference")
    batches = split(batch, [10, 14])
    h = dense_hessian(model.trainable_variables, loss_fn, batches)
    check_operator(model.trainable_variables, loss_fn, batches, h, mode, rng)


@pytest.mark.parametrize("bn_mode", ["inference", "batch"])
@pytest.mark.parametrize("mode", HVP_MODES)
def test_hvp_batchnorm_cnn_leaves_moving_statistics(mode, bn_mode):
    rng = np.random.default_rng(2)
    model, batch = bn_cnn(rng)
    loss_fn = classification_loss(model, bn_mode=bn_mode)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    batches = split(batch, [6, 6])
    h = dense_hessian(model.trainable_variables, loss_fn, batches)
    check_operator(model.trainable_variables, loss_fn, batches, h, mode, rng)
    after = [v.numpy() for v in model.non_trainable_variables]
    assert len(before) == 2
    for b, a in zip(before, after, strict=True):
        assert np.array_equal(a, b)


def test_batchnorm_modes_differ():
    """The two BN modes measure different Hessians (so the choice matters and is recorded)."""
    rng = np.random.default_rng(3)
    model, batch = bn_cnn(rng)
    h_inf = dense_hessian(
        model.trainable_variables, classification_loss(model, bn_mode="inference"), [batch]
    )
    h_bat = dense_hessian(
        model.trainable_variables, classification_loss(model, bn_mode="batch"), [batch]
    )
    assert rel_err(h_inf, h_bat) > 1e-3


@pytest.mark.parametrize(
    "unroll,modes",
    [(False, ["reverse_over_reverse"]), (True, ["reverse_over_reverse", "forward_over_reverse"])],
)
def test_hvp_embedding_lstm_indexed_slices(unroll, modes):
    """Forward mode cannot differentiate a rolled LSTM's while loop: it runs unrolled only."""
    rng = np.random.default_rng(4)
    # D = 58: the dense reference of a rolled LSTM takes one while-loop pass per row.
    model, batch = embedding_lstm(rng, vocab=6, embed=2, units=2, unroll=unroll)
    loss_fn = classification_loss(model, bn_mode="inference")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(loss_fn(batch))
    grads = tape.gradient(loss, model.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)
    batches = split(batch, [4, 6])
    h = dense_hessian(model.trainable_variables, loss_fn, batches, use_pfor=unroll)
    for mode in modes:  # one dense reference for the modes
        check_operator(model.trainable_variables, loss_fn, batches, h, mode, rng)


def test_modes_agree_and_no_retrace():
    rng = np.random.default_rng(5)
    model, batch = tanh_mlp(rng)
    loss_fn = classification_loss(model, bn_mode="inference")
    batches = split(batch, [8, 8, 8])
    ops = [HessianOperator(model.trainable_variables, loss_fn, batches, mode=m) for m in HVP_MODES]
    v = rng.standard_normal(ops[0].dim)
    a, b = (op.matvec(v) for op in ops)
    assert rel_err(a, b) <= 1e-12
    for op in ops:
        op.matvec(rng.standard_normal(op.dim))
        assert op.traces == 1
        assert op.matvecs == 2
        # One more trace per number of vectors in a block, none on repeated calls.
        for _ in range(2):
            op.matvec_block(rng.standard_normal((2, op.dim)))
        assert op.traces == 2
        assert op.matvecs == 6
    vectors = rng.standard_normal((2, ops[0].dim))
    a, b = (op.matvec_block(vectors) for op in ops)
    assert rel_err(a, b) <= 1e-12
    with pytest.raises(ValueError, match=r"vectors: expected vectors as rows of shape \(b, "):
        ops[0].matvec_block(vectors[0])


def test_another_sample_shares_the_traced_product():
    """`on(sample)`: the operator of another sample equals one built for it (to 1e-12 relative,
    float64) and a batch shape already seen is not traced again."""
    rng = np.random.default_rng(7)
    model, batch = tanh_mlp(rng)
    loss_fn = classification_loss(model, bn_mode="inference")
    first = HessianOperator(
        model.trainable_variables, loss_fn, split(batch, [8, 8]), mode=HVP_MODES[0]
    )
    v = rng.standard_normal(first.dim)
    first.matvec(v)
    other_sample = split(batch, [16, 8])[::-1]  # shapes 8 (seen) and 16 (new)
    other = first.on(other_sample)
    fresh = HessianOperator(model.trainable_variables, loss_fn, other_sample, mode=HVP_MODES[0])
    assert rel_err(other.matvec(v), fresh.matvec(v)) <= 1e-12
    assert other.num_examples == 24 and other.matvecs == 1 and first.matvecs == 1
    assert first.traces == 2  # batch size 8, then 16; none for the repeated 8
    assert rel_err(first.matvec(v), first.on(split(batch, [8, 8])).matvec(v)) == 0.0


def test_linear_operator_and_float32():
    rng = np.random.default_rng(6)
    variables, loss_fn, batch, h = softmax_regression(rng)
    op = HessianOperator(variables, loss_fn, [batch], mode="reverse_over_reverse")
    op = op.as_linear_operator()
    v = rng.standard_normal(op.shape[0])
    assert rel_err(op @ v, h @ v) <= RTOL
    columns = rng.standard_normal((op.shape[0], 3))  # scipy's matmat: vectors as columns
    assert rel_err(op @ columns, h @ columns) <= RTOL
    v32 = [tf.Variable(tf.cast(w, tf.float32)) for w in variables]

    def loss32(b):
        x, y = b
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=tf.cast(x, tf.float32) @ v32[0] + v32[1]
        )

    hv32 = HessianOperator(v32, loss32, [batch], mode="reverse_over_reverse").apply(v)
    assert hv32.dtype == tf.float32
    assert rel_err(hv32.numpy(), h @ v) <= 1e-5


def test_bad_input():
    rng = np.random.default_rng(7)
    variables, loss_fn, batch, _ = softmax_regression(rng)
    with pytest.raises(ValueError, match="batches"):
        HessianOperator(variables, loss_fn, [], mode="reverse_over_reverse")
    with pytest.raises(ValueError, match="mode"):
        HessianOperator(variables, loss_fn, [batch], mode="finite_differences")
    with pytest.raises(ValueError, match="variables"):
        HessianOperator([], loss_fn, [batch], mode="reverse_over_reverse")
    op = HessianOperator(variables, loss_fn, [batch], mode="reverse_over_reverse")
    with pytest.raises(ValueError, match="v: expected a flat vector of length"):
        op.matvec(np.ones(3))
    variables[0].assign(variables[0] * np.inf)
    with pytest.raises(
        FloatingPointError, match="loss_fn: the Hessian-vector product is not finite"
    ):
        op.matvec(np.ones(op.dim))


def test_a_tuple_is_one_batch():
    """HessianOperator(vars, loss, (x, y)): the tuple is the sample, not two batches x and y."""
    rng = np.random.default_rng(8)
    variables, loss_fn, batch, h = softmax_regression(rng)
    op = HessianOperator(variables, loss_fn, tuple(batch), mode="reverse_over_reverse")
    assert op.num_examples == int(batch[0].shape[0]) and len(op.counts) == 1
    v = rng.standard_normal(op.dim)
    assert rel_err(op.matvec(v), h @ v) <= RTOL

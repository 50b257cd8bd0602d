"""BERT through the TF-Hub handle code path, on a tiny BERT exported as a TF-Hub SavedModel."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tiny_hub import KEYS, SEQ, VOCAB, export_tiny_bert

from tfbreak.data import BertPairTokenizer
from tfbreak.data.mnli import vocab_path_from_handle
from tfbreak.models import build_model, trainable_tf_variables, weight_decay_variables
from tfbreak.models.bert import HubBertEncoder


@pytest.fixture(scope="module")
def handle(tmp_path_factory):
    return export_tiny_bert(tmp_path_factory.mktemp("hub"))


def _loss(model, x, y):
    logits = model(x, training=False)
    return tf.reduce_mean(
        tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    )


def test_bert_through_hub_handle(handle):
    vocab_path = vocab_path_from_handle(handle)
    assert vocab_path.endswith("assets/vocab.txt")
    tok = BertPairTokenizer(vocab_path, sequence_length=SEQ)
    x = tok(
        ["the cat sat on the mat .", "a dog ran", "the cats ran", "a mat"],
        ["a dog sat", "the cat sat on the mat", "dogs", "the mat ."],
    )
    ids, mask, seg = (x[k].numpy() for k in KEYS)
    cls, sep = VOCAB.index("[CLS]"), VOCAB.index("[SEP]")
    assert (ids[:, 0] == cls).all()
    # Row 1: [CLS] a dog ran [SEP] the cat sat on the mat [SEP] - exactly 12.
    row = list(ids[1])
    assert row.count(sep) == 2 and row[4] == sep and row[-1] == sep
    assert list(seg[1]) == [0] * 5 + [1] * 7
    assert list(mask[1]) == [1] * 12
    # Row 3: [CLS] a mat [SEP] the mat . [SEP] + padding.
    assert list(seg[3]) == [0] * 4 + [1] * 4 + [0] * 4
    assert list(mask[3]) == [1] * 8 + [0] * 4
    assert list(ids[3][8:]) == [0] * 4

    model = build_model("bert", num_classes=3, handle=handle, input_shape=(SEQ,), seed=0)
    encoder = next(layer for layer in model.layers if isinstance(layer, HubBertEncoder))
    hub_vars = encoder.hub_trainable_variables
    assert len(hub_vars) > 10
    variables = trainable_tf_variables(model)
    assert len(variables) == len(model.trainable_variables) + len(hub_vars) == len(hub_vars) + 2
    decayed = {id(v) for v in weight_decay_variables(model)}
    assert id(model.get_layer("logits").kernel.value) in decayed
    assert all(id(v) not in decayed for v in variables if v.shape.rank < 2)

    logits = model(x)
    assert logits.shape == (4, 3)
    # Deterministic (encoder dropout off by default, even in training mode).
    np.testing.assert_allclose(model(x, training=True).numpy(), logits.numpy(), rtol=1e-6)

    y = tf.constant([0, 1, 2, 1])
    losses = []
    encoder_before = hub_vars[0].numpy().copy()
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = _loss(model, x, y)
        grads = tape.gradient(loss, variables)
        assert all(g is not None for g in grads)
        for v, g in zip(variables, grads, strict=True):
            v.assign_sub(0.1 * tf.convert_to_tensor(g))
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert not np.array_equal(hub_vars[0].numpy(), encoder_before)  # the encoder trains too

    vector = [tf.random.stateless_normal(v.shape, [1, i]) for i, v in enumerate(variables)]
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            loss = _loss(model, x, y)
        grads = [tf.convert_to_tensor(g) for g in inner.gradient(loss, variables)]
        dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vector, strict=True)])
    hv = outer.gradient(dot, variables)
    flat = np.concatenate([tf.convert_to_tensor(h).numpy().ravel() for h in hv])
    assert np.isfinite(flat).all() and np.abs(flat).max() > 0
    # Curvature flows into the encoder, not just the head.
    assert any(np.abs(tf.convert_to_tensor(h).numpy()).max() > 0 for h in hv[2:])


def test_bert_requires_handle():
    with pytest.raises(ValueError, match="handle"):
        build_model("bert", num_classes=3)

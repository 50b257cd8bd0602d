"""The `overlap` part, |<g, e1_H>| / ||g||, against a dense float64 reference: e1 of the dense
Hessian of the Hessian sample and the gradient of the probe batch by autodiff."""

import numpy as np
import pytest
import tensorflow as tf
from dense_reference import dense_hessian, tanh_mlp

from tfbreak.config import ConfigError
from tfbreak.curvature import classification_loss
from tfbreak.data import fixed_subset
from tfbreak.data.common import in_memory_dataset
from tfbreak.measure import MeasurementSettings
from tfbreak.measure.samples import SampleStream
from tfbreak.measure.suite import build_suite
from tfbreak.runs import names

N, S, SEED, STEP = 200, 16, 3, 7


def test_overlap_equals_the_dense_cosine():
    rng = np.random.default_rng(0)
    model, _ = tanh_mlp(rng, n=1, d=5, hidden=6, classes=3)
    x, y = rng.standard_normal((N, 5)), rng.integers(0, 3, N).astype(np.int32)
    train, lookup = in_memory_dataset((x, y))
    settings = MeasurementSettings(
        measurements=("hessian", "overlap"),
        hessian_sample_size=40,
        top_k=2,
        lanczos_tol=1e-10,
        lanczos_max_iter=60,
    ).validate()
    loss_fn = classification_loss(model, bn_mode="inference")
    suite = build_suite(
        model, model.trainable_variables, loss_fn, settings, train=train, test=None,
        num_train=N, num_test=0, batch_size=S, seed=SEED, update_fn=None, lookup=lookup,
    )  # fmt: skip
    row, _ = suite.measure(STEP, 0.1)

    sample = fixed_subset(train, 40, SampleStream.HESSIAN.seed(SEED), lookup=lookup)
    values, vectors = np.linalg.eigh(dense_hessian(model.trainable_variables, loss_fn, [sample]))
    probe = fixed_subset(train, S, SampleStream.PROBE.seed(SEED, STEP), lookup=lookup)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(loss_fn(probe))
    g = np.concatenate([np.ravel(t) for t in tape.gradient(loss, model.trainable_variables)])
    expected = abs(g @ vectors[:, -1]) / np.linalg.norm(g)
    assert 0.01 < expected < 0.99  # a case where the cosine says something
    # The Ritz vector v is within angle residual / gap of e1 (Davis-Kahan), so the cosine with
    # a unit vector moves by at most about that much.
    angle = row[names.HESSIAN_RESIDUAL_1] / (values[-1] - values[-2])
    assert angle < 1e-4
    assert row[names.GRAD_OVERLAP_E1_H] == pytest.approx(expected, abs=2 * angle + 1e-12)


def test_overlap_needs_the_hessian_part():
    with pytest.raises(ConfigError, match="--measurements: .*'hessian' when 'overlap'"):
        MeasurementSettings(measurements=("overlap", "K")).validate()

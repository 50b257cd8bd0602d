"""The sampling error of lambda_1(H) from the per-example curvatures along e1_H
(`DirectionalCurvature.mean_stderr`) against the spread of lambda_1 over fresh Hessian samples at
fixed weights: the paper's MLP on real Fashion-MNIST."""

import numpy as np
import pytest

from tfbreak.curvature import CurvatureAlong, HessianOperator, classification_loss, lanczos
from tfbreak.data import fixed_subset, load_dataset
from tfbreak.models import build_model, trainable_tf_variables

SAMPLE, DRAWS = 512, 20


@pytest.mark.slow
def test_lambda_1_stderr_matches_the_spread_over_fresh_hessian_samples():
    """Asserted: the median stderr is within a factor 1.5 of the standard deviation of lambda_1
    over 20 fresh samples of 512 examples (measured: 1.2 at 256 and at 1024 examples, 20
    draws), and the nominal 95 % intervals lambda_1 +- 1.96 se cover the mean of the draws at
    least 16 times in 20 (fewer has probability < 2 % for a calibrated 95 % interval)."""
    bundle = load_dataset("fashion_mnist")
    model = build_model("mlp", num_classes=10, input_shape=bundle.input_shape, seed=0)
    variables = trainable_tf_variables(model)
    loss_fn = classification_loss(model, bn_mode="inference")
    along = CurvatureAlong(variables, loss_fn)
    values, stderrs = [], []
    samples = [
        [fixed_subset(bundle.train, SAMPLE, seed=1000 + draw, lookup=bundle.train_lookup)]
        for draw in range(DRAWS)
    ]
    first = HessianOperator(variables, loss_fn, samples[0], mode="reverse_over_reverse")
    for draw, sample in enumerate(samples):
        op = first.on(sample)  # traced once for all draws
        top = lanczos(op, 1, tol=1e-5, max_iter=60, converge_k=1, block=1, seed=draw, basis="host")
        values.append(top.eigenvalues[0])
        stderrs.append(along(sample, top.eigenvectors[0]).mean_stderr(bundle.num_train))
    values, stderrs = np.asarray(values), np.asarray(stderrs)
    spread = np.std(values, ddof=1)
    ratio = np.median(stderrs) / spread
    assert 1 / 1.5 <= ratio <= 1.5, (ratio, np.median(stderrs), spread)
    covered = np.abs(values - values.mean()) <= 1.96 * stderrs
    assert covered.sum() >= 16, covered


@pytest.mark.slow
def test_k_intervals_cover_the_large_sample_value():
    """Coverage of the nominal 95 % intervals value +- 1.96 jackknife se on lambda_1(K) and
    Tr(K) from L = 25 fresh mini-batches of M = 64, at fixed weights (the MLP after 300 SGD
    steps on real Fashion-MNIST), of the value from L = 200 fresh mini-batches.
    benchmarks/coverage.py (40 draws, L = 400 truth) measured 0.88 for lambda_1(K) (its L = 25
    estimates are biased up by a third, which the jackknife does not remove) and 0.90 for Tr(K).
    Asserted over 20 draws: at least 14 (lambda_1) and 15 (Tr) covered, each below 2 %
    probability at the measured coverage."""
    import tensorflow as tf

    from tfbreak.curvature import (
        CovarianceOperator,
        GradientFunctions,
        covariance_spectrum,
        jackknife,
    )
    from tfbreak.curvature.sharding import split_batches
    from tfbreak.data import train_batches

    bundle = load_dataset("fashion_mnist")
    model = build_model("mlp", num_classes=10, input_shape=bundle.input_shape, seed=0)
    variables = trainable_tf_variables(model)
    loss_fn = classification_loss(model, bn_mode="inference")
    grads = GradientFunctions(variables, loss_fn)

    @tf.function
    def sgd(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(batch))
        for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
            v.assign_sub(0.03 * g)

    for i, batch in enumerate(train_batches(bundle, 64, seed=0, epoch=0)):
        if i == 300:
            break
        sgd(batch)

    def spectrum(L, seed):
        sample = fixed_subset(bundle.train, L * 64, seed, lookup=bundle.train_lookup)
        return covariance_spectrum(
            CovarianceOperator.minibatches(grads, split_batches(sample, 64), on_host=False)
        )

    truth = spectrum(200, 999)
    covered = {"lambda_1": 0, "trace": 0}
    for draw in range(20):
        s = spectrum(25, 2000 + draw)
        se = jackknife(s).stderrs()
        for stat in covered:
            covered[stat] += abs(getattr(s, stat) - getattr(truth, stat)) <= 1.96 * se[stat]
    assert covered["lambda_1"] >= 14 and covered["trace"] >= 15, covered

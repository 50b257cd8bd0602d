"""Coverage of the nominal 95 % intervals on lambda_1(H), lambda_1(K) and Tr(K) at fixed weights.

    python benchmarks/coverage.py [--draws 40] [--steps 300] [--sample 3000] [--truth-L 400]

Protocol. The paper's MLP (300-100, ReLU) is trained on REAL Fashion-MNIST with plain SGD (lr
0.03, S = 64) for --steps steps; then, at these fixed weights, --draws fresh measurements are
taken exactly as a run takes them:
  lambda_1(H)  Lanczos (tol 1e-6) on a fresh Hessian sample of --sample training examples; the
               interval is lambda_1 +- 1.96 se, se = `hessian/lambda_1_stderr` (the sampling
               error from the per-example curvatures along e1_H);
  K            L = 25 fresh mini-batches of M = 64 (the training batch size, App. C); the
               intervals are the jackknife's (`CovarianceJackknife.interval`: bias-corrected,
               log scale) and the plain value +- 1.96 se.
The truths: lambda_1(H) of a Hessian sample of --truth-sample examples (Lanczos, tol 1e-7);
lambda_1(K_M) and Tr(K_M) of --truth-L fresh mini-batches (their bias is O(1/L), the
intervals' half-width O(1/sqrt(25))). Printed: per quantity the coverage of the truth, the
median stderr over the standard deviation of the draws (1 = calibrated), and a binomial 95 %
range of the coverage a calibrated interval would show with this many draws.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfbreak.curvature import (  # noqa: E402
    CovarianceOperator,
    CurvatureAlong,
    GradientFunctions,
    HessianOperator,
    classification_loss,
    covariance_spectrum,
    jackknife,
    lanczos,
)
from tfbreak.curvature.sharding import split_batches  # noqa: E402
from tfbreak.data import fixed_subset, load_dataset, train_batches  # noqa: E402
from tfbreak.models import build_model, trainable_tf_variables  # noqa: E402

L, M = 25, 64


def train(model, variables, loss_fn, bundle, steps: int, lr: float) -> None:
    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn((x, y)))
        for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
            v.assign_sub(lr * g)

    for i, (x, y) in enumerate(train_batches(bundle, M, seed=0, epoch=0)):
        if i == steps:
            break
        step(x, y)


def draw(bundle, size: int, seed: int):
    return fixed_subset(bundle.train, size, seed, lookup=bundle.train_lookup)


def lambda_1_h(variables, loss_fn, sample, tol: float, seed: int):
    op = HessianOperator(
        variables, loss_fn, split_batches(sample, 512), mode="reverse_over_reverse"
    )
    return lanczos(op, 1, tol=tol, max_iter=80, converge_k=1, block=2, seed=seed, basis="host")


def summary(name: str, estimates, stderrs, intervals, truth: float) -> tuple:
    estimates, stderrs = np.asarray(estimates), np.asarray(stderrs)
    covered = np.mean([lo <= truth <= hi for lo, hi in intervals])
    calibration = np.median(stderrs) / np.std(estimates, ddof=1)
    return name, truth, np.mean(estimates), covered, calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=40)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sample", type=int, default=3000)
    parser.add_argument("--truth-sample", type=int, default=20000)
    parser.add_argument("--truth-L", type=int, default=400)
    args = parser.parse_args()
    t0 = time.perf_counter()
    bundle = load_dataset("fashion_mnist")
    model = build_model("mlp", num_classes=10, input_shape=bundle.input_shape, seed=0)
    variables = trainable_tf_variables(model)
    loss_fn = classification_loss(model, bn_mode="inference")
    train(model, variables, loss_fn, bundle, args.steps, lr=0.03)
    along = CurvatureAlong(variables, loss_fn)
    grads = GradientFunctions(variables, loss_fn)
    n = bundle.num_train

    truth_h = lambda_1_h(variables, loss_fn, draw(bundle, args.truth_sample, 999), 1e-7, 0)
    big = split_batches(draw(bundle, args.truth_L * M, 998), M)
    truth_k = covariance_spectrum(CovarianceOperator.minibatches(grads, big, on_host=False))
    h, h_se, h_iv = [], [], []
    k = {"lambda_1": ([], [], [], []), "trace": ([], [], [], [])}
    for d in range(args.draws):
        sample = draw(bundle, args.sample, 10_000 + d)
        top = lambda_1_h(variables, loss_fn, sample, 1e-6, d)
        se = along(split_batches(sample, 512), top.eigenvectors[0]).mean_stderr(n)
        h.append(top.eigenvalues[0])
        h_se.append(se)
        h_iv.append((top.eigenvalues[0] - 1.96 * se, top.eigenvalues[0] + 1.96 * se))
        spectrum = covariance_spectrum(
            CovarianceOperator.minibatches(
                grads, split_batches(draw(bundle, L * M, 20_000 + d), M), on_host=False
            )
        )
        jk = jackknife(spectrum)
        for stat, (est, ses, log_iv, plain_iv) in k.items():
            value, se = getattr(spectrum, stat), jk.stderrs()[stat]
            est.append(value)
            ses.append(se)
            log_iv.append(jk.interval(stat))
            plain_iv.append((value - 1.96 * se, value + 1.96 * se))
    rows = [summary("lambda_1(H)  +-1.96 se", h, h_se, h_iv, truth_h.eigenvalues[0])]
    for stat, (est, ses, log_iv, plain_iv) in k.items():
        truth = getattr(truth_k, stat)
        rows.append(summary(f"{stat}(K) jackknife, log", est, ses, log_iv, truth))
        rows.append(summary(f"{stat}(K) +-1.96 se", est, ses, plain_iv, truth))
    lo, hi = scipy.stats.binom.interval(0.95, args.draws, 0.95)
    print(
        f"# MLP on REAL Fashion-MNIST ({bundle.source}) after {args.steps} SGD steps (lr 0.03, "
        f"S = {M}); {args.draws} fresh draws; Hessian sample {args.sample}; K: L = {L}, M = {M}; "
        f"truths: Hessian sample {args.truth_sample}, K from L = {args.truth_L}"
    )
    print(f"{'interval':28s} {'truth':>10s} {'mean est.':>10s} {'coverage':>9s} {'se/sd':>6s}")
    for name, truth, mean, covered, calibration in rows:
        print(f"{name:28s} {truth:10.4g} {mean:10.4g} {covered:9.2f} {calibration:6.2f}")
    print(
        f"A calibrated 95 % interval covers {lo / args.draws:.2f}-{hi / args.draws:.2f} of "
        f"{args.draws} draws (binomial 95 % range). Total {time.perf_counter() - t0:.0f} s."
    )
    keys = ("lambda_1_H", "lambda_1_K_log", "lambda_1_K_plain", "trace_K_log", "trace_K_plain")
    for key, row in zip(keys, rows, strict=True):
        print(f"coverage_{key}={row[3]:.3f}")


if __name__ == "__main__":
    main()

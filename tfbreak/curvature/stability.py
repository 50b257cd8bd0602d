"""Stability along e1_H: Delta L and the inputs of the break-even condition (Sec. 3, 4.1).

Eq. 1 (Wu et al. 2018, Thm. 1): SGD with learning rate eta and batch size S on N examples is
stable along e1_H iff (1 - eta lambda_1^H)^2 + s^2 eta^2 (N - S) / (S (N - 1)) <= 1, where
s^2 = Var_i[H_i] and H_i = e1^T (d^2 l_i / d theta^2) e1 is example i's curvature along e1_H.
`curvature_along` measures the H_i; the left side itself is `tfbreak.analysis.breakeven.eq1_lhs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfbreak.curvature.hvp import Batch, LossFn
from tfbreak.curvature.parameters import ParameterSpace


def delta_loss(
    variables: Sequence[tf.Variable], loss_fn: LossFn, batch: Batch, update: tf.Tensor
) -> float:
    """Delta L = L_B(theta) - L_B(theta + update) on a fixed batch B (Sec. 4.1; > 0: the step
    decreased the loss). The variables are restored bit-exactly afterwards."""
    space = ParameterSpace(variables)
    update = space.to_device(update, "update")
    theta = space.values()
    before = float(tf.reduce_mean(loss_fn(batch)))
    try:
        space.assign(theta + update)
        after = float(tf.reduce_mean(loss_fn(batch)))
    finally:
        space.assign(theta)
    return before - after


@dataclass(frozen=True)
class DirectionalCurvature:
    """Per-example curvatures H_i = e^T H_i e along a unit direction e, over a sample.

    mean: (1/n) sum_i H_i (= e^T H e, lambda_1^H when e = e1_H); s2: Var_i[H_i] (ddof = 0, the
    population variance over the sample, as Var over training examples in Eq. 1).
    """

    values: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def s2(self) -> float:
        return float(np.var(self.values))


def curvature_along(
    variables: Sequence[tf.Variable], loss_fn: LossFn, batches: Iterable[Batch], direction
) -> DirectionalCurvature:
    """H_i = d^2/dt^2 l_i(theta + t e) at t = 0 for every example, by forward-over-forward
    autodiff (two nested ForwardAccumulators): one pass per batch gives all of them."""
    space = ParameterSpace(variables)
    e = space.to_device(direction, "direction")
    norm = float(tf.norm(e))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("direction: must be a finite, non-zero vector")
    tangents = space.unflatten(e / norm)

    @tf.function(reduce_retracing=True)
    def second_derivatives(batch):
        with tf.autodiff.ForwardAccumulator(space.variables, tangents) as outer:
            with tf.autodiff.ForwardAccumulator(space.variables, tangents) as inner:
                losses = loss_fn(batch)
            first = inner.jvp(losses, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return outer.jvp(first, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    values = [second_derivatives(b).numpy() for b in batches]
    if not values:
        raise ValueError("batches: the sample is empty")
    return DirectionalCurvature(values=np.concatenate(values).astype(np.float64))

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

from tfbreak.curvature.hvp import Batch, LossFn, batch_signature
from tfbreak.curvature.parameters import ParameterSpace
from tfbreak.distribute import ReplicaConcat, ReplicaSum, shard_count


def delta_loss(
    variables: Sequence[tf.Variable],
    loss_fn: LossFn,
    batch: Batch,
    update: tf.Tensor,
    strategy: tf.distribute.Strategy | None = None,
) -> float:
    """Delta L = L_B(theta) - L_B(theta + update) on a fixed batch B (Sec. 4.1; > 0: the step
    decreased the loss). The variables are restored bit-exactly afterwards.

    With a `strategy`, B is split into per-replica shards and each mean loss is the
    cross-replica sum of the shards' summed losses divided by |B|."""
    space = ParameterSpace(variables)
    update = space.to_device(update, "update")
    theta = space.values()
    if strategy is None:

        def mean_loss() -> float:
            return float(tf.reduce_mean(loss_fn(batch)))

    else:
        summed = ReplicaSum(
            strategy, lambda shard: (tf.reduce_sum(loss_fn(shard)), shard_count(shard, space.dtype))
        )
        shards = summed.distribute(batch)

        def mean_loss() -> float:
            total, count = summed(shards)
            return float(total / count)

    before = mean_loss()
    try:
        space.assign(theta + update)
        after = mean_loss()
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


class CurvatureAlong:
    """H_i = e^T (d^2 l_i / d theta^2) e for every example, in one pass per batch; the pass is
    a `tf.function` traced once per batch structure, reused across measurements.

    With example weights w (all 1), q(w) = e^T d^2/dtheta^2 [sum_i w_i l_i] e = sum_i w_i H_i,
    so dq/dw_i = H_i: an HVP (reverse-over-reverse) followed by one more reverse pass with
    respect to w gives all per-example curvatures without per-example gradients. (Nested
    ForwardAccumulators over variables are not supported by TensorFlow.)

    With a `strategy`, each batch is split into per-replica shards (uneven allowed) and the
    shards' H_i are gathered in example order."""

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        loss_fn: LossFn,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.space = ParameterSpace(variables)
        self.loss_fn = loss_fn
        self.strategy = strategy
        self.traces = 0
        self._fn = None

    def _per_example(self, batch: Batch, e: tf.Tensor) -> tf.Tensor:
        self.traces += 1
        space = self.space
        weights = tf.ones([tf.shape(tf.nest.flatten(batch)[0])[0]], space.dtype)
        with tf.GradientTape(watch_accessed_variables=False) as by_weight:
            by_weight.watch(weights)
            with tf.GradientTape(watch_accessed_variables=False) as outer:
                outer.watch(space.variables)
                with tf.GradientTape(watch_accessed_variables=False) as inner:
                    inner.watch(space.variables)
                    loss = tf.reduce_sum(weights * self.loss_fn(batch))
                grad = space.flatten(inner.gradient(loss, space.variables))
                directional = tf.tensordot(grad, e, 1)
            hv = space.flatten(outer.gradient(directional, space.variables))
            q = tf.tensordot(hv, e, 1)
        return by_weight.gradient(q, weights)

    def __call__(self, batches: Iterable[Batch], direction) -> DirectionalCurvature:
        """The per-example curvatures of all examples of `batches` along unit(direction)."""
        space = self.space
        e = space.to_device(direction, "direction")
        norm = float(tf.norm(e))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("direction: must be a finite, non-zero vector")
        e = e / tf.cast(norm, e.dtype)
        batches = [tf.nest.map_structure(tf.convert_to_tensor, b) for b in batches]
        if not batches:
            raise ValueError("batches: the sample is empty")
        if self._fn is None:
            if self.strategy is None:
                spec = [batch_signature(batches[0]), tf.TensorSpec([space.dim], space.dtype)]
                self._fn = tf.function(self._per_example, input_signature=spec)
            else:
                self._fn = ReplicaConcat(self.strategy, self._per_example)
        values = [self._fn(b, e).numpy() for b in batches]
        return DirectionalCurvature(values=np.concatenate(values).astype(np.float64))


def curvature_along(
    variables: Sequence[tf.Variable],
    loss_fn: LossFn,
    batches: Iterable[Batch],
    direction,
    strategy: tf.distribute.Strategy | None = None,
) -> DirectionalCurvature:
    """One-off `CurvatureAlong(variables, loss_fn, strategy)(batches, direction)`."""
    return CurvatureAlong(variables, loss_fn, strategy)(batches, direction)

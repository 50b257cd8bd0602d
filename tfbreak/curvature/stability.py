"""Stability along e1_H: Delta L and the inputs of the break-even condition (Sec. 3, 4.1).

Eq. 1 (Wu et al. 2018, Thm. 1): SGD with learning rate eta and batch size S on N examples is
stable along e1_H iff (1 - eta lambda_1^H)^2 + s^2 eta^2 (N - S) / (S (N - 1)) <= 1, where
s^2 = Var_i[H_i] and H_i = e1^T (d^2 l_i / d theta^2) e1 is example i's curvature along e1_H.
`CurvatureAlong` measures the H_i; the left side is `tfbreak.curvature.eq1.eq1_lhs`, and
`DirectionalCurvature.mean_stderr` is the sampling error of lambda_1^H on a sample of examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfbreak.curvature.parameters import LossFunctions
from tfbreak.curvature.sharding import (
    Batch,
    BatchFunction,
    FunctionalLoss,
    as_batches,
    num_examples,
)


class DeltaLoss(LossFunctions):
    """Delta L = L_B(theta) - L_B(theta + update) on a batch B (Sec. 4.1; > 0: the step
    decreased the loss). The variables are restored bit-exactly afterwards. The mean loss is one
    `BatchFunction` (summed losses / |B|), traced once and reused across calls.

    For l(w) = w^2 / 2 and the gradient step -eta w, Delta L = w^2 (1 - (1 - eta)^2) / 2:

    >>> import numpy as np, tensorflow as tf
    >>> w = tf.Variable([2.0], dtype=tf.float64)
    >>> delta = DeltaLoss([w], lambda batch: 0.5 * w[0] ** 2 * tf.ones_like(batch[1]))
    >>> batch = (np.zeros((3, 1)), np.zeros(3))
    >>> float(delta(batch, np.array([-0.5 * 2.0])))  # eta = 0.5: 2 * (1 - 0.25)
    1.5
    >>> float(w[0])  # the parameters are restored
    2.0
    """

    def _build(self) -> None:
        self._summed = BatchFunction(
            lambda b: tf.reduce_sum(self.loss_fn(b)), strategy=self.strategy
        )

    def mean_loss(self, batch: Batch) -> float:
        return float(self._summed(batch) / tf.cast(num_examples(batch), self.space.dtype))

    def __call__(self, batch: Batch, update) -> float:
        space = self.space
        update = space.to_device(update, "update")
        theta = space.values()
        before = self.mean_loss(batch)
        try:
            space.assign(theta + update)
            after = self.mean_loss(batch)
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

    def mean_stderr(self, population: int) -> float:
        """Standard error of `mean` as an estimate of e^T H e over the `population` of N
        examples the sample of n was drawn from (without replacement):

            se = sqrt(s_u^2 / n * (N - n) / (N - 1)),  s_u^2 = n s^2 / (n - 1).

        Along e = e1_H it is, to first order, the sampling error of lambda_1^H itself: for a
        Hessian sample S, H_S = (1/n) sum_{i in S} H_i, and a perturbation dH moves the top
        eigenvalue by e1^T dH e1 (first-order perturbation of a simple eigenvalue), so
        lambda_1(H_S) - lambda_1(H) ~ (1/n) sum_{i in S} H_i - E[H_i] along e1: a sample mean of
        the per-example curvatures H_i, whose variance is the s^2 of Eq. 1 over n."""
        n = self.values.size
        if n < 2:
            return float("nan")
        n_pop = int(population)
        if n_pop < n:
            raise ValueError(f"population: must be >= the sample size {n}, got {n_pop}")
        fpc = (n_pop - n) / (n_pop - 1) if n_pop > 1 else 0.0
        return float(np.sqrt(np.var(self.values, ddof=1) / n * fpc))


class CurvatureAlong(LossFunctions):
    """H_i = e^T (d^2 l_i / d theta^2) e for every example, in one pass per batch; the pass is
    a `BatchFunction` (gathering per-example values), traced once (Taylor mode: once per batch
    size) and reused across calls. Along e1_H their mean is lambda_1^H and their variance the
    s^2 of Eq. 1 (Sec. 3).

    Least squares, l_i = (x_i . w - y_i)^2 / 2, has H_i = x_i x_i^T, so H_i = (x_i . e)^2:

    >>> import numpy as np, tensorflow as tf
    >>> x = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 2.0]])
    >>> w = tf.Variable(np.zeros(2))
    >>> def loss_fn(batch):
    ...     return 0.5 * (tf.linalg.matvec(batch[0], w) - batch[1]) ** 2
    >>> curv = CurvatureAlong([w], loss_fn)((x, np.ones(3)), np.array([1.0, 0.0]))
    >>> curv.values.tolist(), round(curv.mean, 12), round(curv.s2, 12)  # s^2 = 146/9
    ([1.0, 9.0, 0.0], 3.333333333333, 16.222222222222)

    Two exact ways, chosen by the loss:
    - Taylor mode, for a `FunctionalLoss` over exactly these variables: with the parameters set
      to theta + t e, H_i = d^2 l_i / dt^2 at t = 0 for every example at once, by two nested
      forward-mode accumulators over the scalar t (one forward pass carrying second-order
      tangents: 0.85-0.9 of a Hessian-vector product on SimpleCNN and ResNet-32, against
      1.3-1.4 for reverse mode, benchmarks/hvp_cost.py).
    - Reverse mode, for any loss: with example weights w (all 1),
      q(w) = e^T d^2/dtheta^2 [sum_i w_i l_i] e = sum_i w_i H_i, so dq/dw_i = H_i: an HVP
      (reverse-over-reverse) followed by one more reverse pass with respect to w (nested
      ForwardAccumulators over variables are not supported by TensorFlow). Also the fallback
      when forward mode cannot trace the loss (the while loop of a rolled LSTM).
    """

    def _build(self) -> None:
        functional = isinstance(self.loss_fn, FunctionalLoss) and [
            id(v) for v in self.loss_fn.parameters
        ] == [id(v) for v in self.space.variables]
        self._use("taylor" if functional else "reverse")

    def _use(self, mode: str) -> None:
        self.mode = mode
        self._fn = BatchFunction(
            self._taylor if mode == "taylor" else self._reverse,
            strategy=self.strategy,
            gather=True,
            arg_specs=[tf.TensorSpec([self.space.dim], self.space.dtype)],
            exact_shapes=mode == "taylor",  # traced once per batch size (see BatchFunction)
        )

    def _taylor(self, batch: Batch, e: tf.Tensor) -> tf.Tensor:
        self.traces += 1
        space = self.space
        t = tf.zeros([], space.dtype)
        one = tf.ones([], space.dtype)
        with tf.autodiff.ForwardAccumulator(t, one) as second:
            with tf.autodiff.ForwardAccumulator(t, one) as first:
                values = [
                    v + t * d for v, d in zip(space.variables, space.unflatten(e), strict=True)
                ]
                losses = self.loss_fn.at(values, batch)
            slopes = first.jvp(losses, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return second.jvp(slopes, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def _reverse(self, batch: Batch, e: tf.Tensor) -> tf.Tensor:
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
        e = self.space.to_device(direction, "direction")
        norm = float(tf.norm(e))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("direction: must be a finite, non-zero vector")
        e = e / tf.cast(norm, e.dtype)
        batches = as_batches(batches)
        if not batches:
            raise ValueError("batches: the sample is empty")
        try:
            values = [self._fn(b, e).numpy() for b in batches]
        except (TypeError, ValueError, LookupError, NotImplementedError):
            if self.mode != "taylor":
                raise
            # Forward mode could not trace the loss (e.g. a while loop): reverse mode for good.
            self._use("reverse")
            values = [self._fn(b, e).numpy() for b in batches]
        return DirectionalCurvature(values=np.concatenate(values).astype(np.float64))

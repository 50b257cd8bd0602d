"""Hessian-vector products of the training loss over a fixed sample (paper Sec. 4, App. C).

H v = (1/N) sum_b sum_{i in b} (d^2 l_i / d theta^2) v, N the number of examples in the sample
(e.g. 5% of the training set). Each batch's HVP runs in one `tf.function`, traced once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import tensorflow as tf
from scipy.sparse.linalg import LinearOperator

from tfbreak.curvature.parameters import ParameterSpace, to_numpy
from tfbreak.distribute import ReplicaSum

Batch = Any
"""A nest of tensors whose leading dimension indexes examples, e.g. `(x, y)` or a dict."""
LossFn = Callable[[Batch], tf.Tensor]
"""`loss_fn(batch)` returns the per-example losses l_i, shape [batch_size]."""
HVPMode = Literal["reverse_over_reverse", "forward_over_reverse"]
HVP_MODES: tuple[str, ...] = ("reverse_over_reverse", "forward_over_reverse")


def batch_size_of(batch: Batch) -> int:
    """Number of examples in a batch (leading dimension of its first tensor)."""
    leaves = tf.nest.flatten(batch)
    if not leaves:
        raise ValueError("batch: holds no tensors")
    n = leaves[0].shape[0]
    if n is None:
        n = int(tf.shape(leaves[0])[0])
    return int(n)


def batch_signature(batch: Batch) -> Any:
    """TensorSpecs of a batch with the example dimension left open (one trace for all sizes)."""
    return tf.nest.map_structure(
        lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype),
        tf.nest.map_structure(tf.convert_to_tensor, batch),
    )


class HessianOperator:
    """The Hessian of the mean loss over a fixed sample as a linear operator.

    Args:
      variables: the parameters theta (tf.Variables or keras.Variables; float32 or float64).
      loss_fn: `loss_fn(batch)` -> per-example losses; reads the variables (see `keras_loss`).
      batches: the fixed sample, as batches; weighted by their number of examples.
      mode: "reverse_over_reverse" (nested GradientTape, the default) or "forward_over_reverse"
        (tf.autodiff.ForwardAccumulator). They cost the same within noise on CPU (2.4-2.9x a
        gradient, benchmarks/hvp_cost.py); forward mode cannot go through the while loop of a
        rolled LSTM, hence the default.
      strategy: optional `tf.distribute.Strategy` the variables were created under. Each batch
        is split into per-replica shards once (uneven shards allowed), every replica computes
        the HVP of its shard's summed loss, and the shards' products are added (cross-replica
        SUM) before the division by N. None: single device (no tf.distribute).
    """

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        loss_fn: LossFn,
        batches: Iterable[Batch],
        mode: HVPMode = "reverse_over_reverse",
        strategy: tf.distribute.Strategy | None = None,
    ):
        if mode not in HVP_MODES:
            raise ValueError(f"mode: expected one of {HVP_MODES}, got {mode!r}")
        self.space = ParameterSpace(variables)
        self.loss_fn = loss_fn
        self.batches = [tf.nest.map_structure(tf.convert_to_tensor, b) for b in batches]
        if not self.batches:
            raise ValueError("batches: the Hessian sample is empty; need at least one batch")
        self.counts = [batch_size_of(b) for b in self.batches]
        if min(self.counts) < 1:
            raise ValueError("batches: a batch of the Hessian sample holds no examples")
        self.num_examples = int(sum(self.counts))
        self.mode = mode
        self.matvecs = 0
        self.traces = 0
        vector_spec = tf.TensorSpec([self.space.dim], self.space.dtype)
        body = (
            self._reverse_over_reverse
            if mode == "reverse_over_reverse"
            else self._forward_over_reverse
        )
        self.strategy = strategy
        self._inputs = self.batches
        if strategy is None:
            self._batch_hvp = tf.function(
                body, input_signature=[batch_signature(self.batches[0]), vector_spec]
            )
        else:
            self._batch_hvp = ReplicaSum(strategy, body)
            # The fixed sample is sharded once; its shards stay on the replicas' devices.
            self._inputs = [self._batch_hvp.distribute(b) for b in self.batches]

    @property
    def dim(self) -> int:
        return self.space.dim

    def _summed_loss(self, batch: Batch) -> tf.Tensor:
        return tf.reduce_sum(self.loss_fn(batch))

    def _reverse_over_reverse(self, batch: Batch, v: tf.Tensor) -> tf.Tensor:
        self.traces += 1
        variables = self.space.variables
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(variables)
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(variables)
                loss = self._summed_loss(batch)
            grad = self.space.flatten(inner.gradient(loss, variables))
            directional = tf.tensordot(grad, tf.stop_gradient(v), 1)
        return self.space.flatten(outer.gradient(directional, variables))

    def _forward_over_reverse(self, batch: Batch, v: tf.Tensor) -> tf.Tensor:
        self.traces += 1
        variables = self.space.variables
        with tf.autodiff.ForwardAccumulator(variables, self.space.unflatten(v)) as acc:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(variables)
                loss = self._summed_loss(batch)
            grad = self.space.flatten(tape.gradient(loss, variables))
        hv = acc.jvp(grad, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return hv

    def matvec(self, v: tf.Tensor | np.ndarray) -> tf.Tensor:
        """H v as a flat tensor of the variables' dtype; raises on a non-finite product."""
        v = self.space.to_device(v, "v")
        total = None
        for batch in self._inputs:
            hv = self._batch_hvp(batch, v)
            total = hv if total is None else total + hv
        self.matvecs += 1
        result = total / tf.cast(self.num_examples, self.space.dtype)
        if not bool(tf.reduce_all(tf.math.is_finite(result))):
            raise FloatingPointError(
                "loss_fn: the Hessian-vector product is not finite (NaN/inf); the loss or its "
                "curvature overflowed at these parameters"
            )
        return result

    def matvec_host(self, v: np.ndarray) -> np.ndarray:
        """H v for a float64 host vector (what Lanczos and Hutchinson use)."""
        return to_numpy(self.matvec(v))

    def as_linear_operator(self) -> LinearOperator:
        """The operator as a `scipy.sparse.linalg.LinearOperator` (float64, symmetric)."""
        return LinearOperator(
            (self.dim, self.dim),
            matvec=lambda v: self.matvec_host(np.ravel(v)),
            rmatvec=lambda v: self.matvec_host(np.ravel(v)),
            dtype=np.float64,
        )

"""Plain and momentum SGD with weight decay, as one `tf.function` step (paper App. D, F, G).

Heavy-ball momentum (App. F): b <- beta b + g + wd * theta (decayed variables only), then
theta <- theta - eta b; with beta = 0 this is SGD on L(theta) + (wd / 2) ||theta_decayed||^2,
the weight decay of He et al. (2015) used for ResNet-32 (App. D).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfbreak.curvature import ParameterSpace
from tfbreak.curvature.keras_loss import OutputConvention
from tfbreak.curvature.sharding import (
    Batch,
    LossFn,
    batch_signature,
    distribute_batch,
    num_examples,
    replica_sum,
)
from tfbreak.distribute import scope


def _dense(g: tf.Tensor | tf.IndexedSlices, v: tf.Variable) -> tf.Tensor:
    if g is None:
        return tf.zeros_like(v)
    return tf.convert_to_tensor(g)


class SGD:
    """SGD state (momentum buffers) over `variables`; `decay` is the subset weight decay hits.

    With a `strategy` the momentum buffers are created in its scope (mirrored like the
    variables); `apply`/`update` then take already all-reduced gradients and run in
    cross-replica context (see `TrainStep`)."""

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        decay: Sequence[tf.Variable],
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.space = ParameterSpace(variables)
        self.variables = self.space.variables
        decay_refs = {ParameterSpace([v]).variables[0].ref() for v in decay}
        self.decayed = [v.ref() in decay_refs for v in self.variables]
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.strategy = strategy
        with scope(strategy):
            self.buffers = [
                tf.Variable(tf.zeros_like(v), trainable=False, name="momentum")
                for v in (self.variables if self.momentum > 0 else [])
            ]

    def directions(self, grads: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """b_new = beta b + g + wd theta for each variable (nothing is assigned)."""
        out = []
        for i, (g, v) in enumerate(zip(grads, self.variables, strict=True)):
            d = _dense(g, v)
            if self.weight_decay > 0 and self.decayed[i]:
                d = d + self.weight_decay * v
            if self.buffers:
                d = self.momentum * self.buffers[i] + d
            out.append(d)
        return out

    def apply(self, grads: Sequence[tf.Tensor], lr: tf.Tensor) -> None:
        """One SGD step with learning rate `lr`."""
        for i, (d, v) in enumerate(zip(self.directions(grads), self.variables, strict=True)):
            if self.buffers:
                self.buffers[i].assign(d)
            v.assign_sub(tf.cast(lr, v.dtype) * d)

    def update(self, grads: Sequence[tf.Tensor], lr: tf.Tensor) -> tf.Tensor:
        """The flat parameter change Delta theta the next step would make (for Delta L)."""
        flat = self.space.flatten(self.directions(grads))
        return -tf.cast(lr, flat.dtype) * flat


class TrainStep:
    """`step(batch, lr) -> (mean loss, number correct)`: forward in training mode, backward,
    SGD update, traced once. `update(batch, lr)`: the flat Delta theta that step would make,
    with gradients of `measure_loss` (the measurement's BN mode), nothing assigned.

    With a `strategy` (the one model and `sgd` were built under) the batch is split into
    per-replica shards (uneven allowed); each replica returns the gradient of its shard's
    summed loss, the cross-replica SUM divided by the batch size is the gradient of the mean,
    and the update is applied once in cross-replica context. BatchNorm in training mode then
    uses per-replica batch statistics (as everywhere in tf.distribute), so only BN-free models
    follow the single-device trajectory exactly."""

    def __init__(
        self,
        model,
        sgd: SGD,
        example_batch: Batch,
        measure_loss: LossFn,
        convention: OutputConvention,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.model = model
        self.sgd = sgd
        self.measure_loss = measure_loss
        self.convention = convention
        self.strategy = strategy
        if strategy is not None:
            self.step = self._distributed(self._distributed_step)
            self.update = self._distributed(self._distributed_update)
            return
        spec = [batch_signature(example_batch), tf.TensorSpec([], tf.float32)]
        self.step = tf.function(self._step, input_signature=spec)
        self.update = tf.function(self._update, input_signature=spec)

    # ---------------------------------------------------------- under a strategy
    def _distributed(self, fn):
        """`fn(dist_batch, lr, count)` as a tf.function called with an in-memory batch."""
        traced = tf.function(fn, reduce_retracing=True)
        dtype = self.sgd.space.dtype

        def call(batch: Batch, lr):
            count = tf.constant(num_examples(batch), dtype)
            lr = tf.convert_to_tensor(lr, tf.float32)
            return traced(distribute_batch(self.strategy, batch), lr, count)

        return call

    def _replica_step(self, shard: Batch):
        x, y = shard
        space = self.sgd.space
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.sgd.variables)
            logits = self.model(x, training=True)
            loss = tf.reduce_sum(self.convention.loss(y, logits))
        grad = space.flatten(tape.gradient(loss, self.sgd.variables))
        correct = self.convention.correct(y, logits)
        return grad, loss, correct

    def _distributed_step(self, dist_batch, lr: tf.Tensor, count: tf.Tensor):
        grad, loss, correct = replica_sum(self.strategy, self._replica_step, dist_batch)
        self.sgd.apply(self.sgd.space.unflatten(grad / count), lr)
        return loss / tf.cast(count, loss.dtype), correct

    def _replica_update(self, shard: Batch):
        space = self.sgd.space
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.sgd.variables)
            loss = tf.reduce_sum(self.measure_loss(shard))
        return space.flatten(tape.gradient(loss, self.sgd.variables))

    def _distributed_update(self, dist_batch, lr: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
        grad = replica_sum(self.strategy, self._replica_update, dist_batch)
        return self.sgd.update(self.sgd.space.unflatten(grad / count), lr)

    # ---------------------------------------------------------- single device

    def _step(self, batch: Batch, lr: tf.Tensor):
        x, y = batch
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.sgd.variables)
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(self.convention.loss(y, logits))
        self.sgd.apply(tape.gradient(loss, self.sgd.variables), lr)
        correct = self.convention.correct(y, logits)
        return loss, correct

    def _update(self, batch: Batch, lr: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.sgd.variables)
            loss = tf.reduce_mean(self.measure_loss(batch))
        return self.sgd.update(tape.gradient(loss, self.sgd.variables), lr)

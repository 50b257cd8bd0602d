"""Batches, and the one dispatch between a single device and the replicas of a tf.distribute
strategy, used by every operator and estimator of the measurement core (and the SGD step).

Every per-batch quantity is a SUM over examples (losses, gradients, HVPs of summed losses) or a
list of per-example values. Under a strategy each replica gets a contiguous shard of the batch
(`shard_bounds`: sizes differ by at most one, shards may be empty, e.g. 2 examples on 3
replicas), computes the sum over its shard, and the shards' sums are added with a cross-replica
SUM; the caller divides by the batch's example count (`num_examples`), so the result is the
single-device value up to floating-point reordering (never a mean of per-replica means).
Per-example values are gathered in example order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import tensorflow as tf

Batch = Any
"""A nest of tensors whose leading dimension indexes examples, e.g. `(x, y)` or a dict."""
LossFn = Callable[[Batch], tf.Tensor]
"""`loss_fn(batch)` returns the per-example losses l_i, shape [batch_size]."""


@runtime_checkable
class FunctionalLoss(Protocol):
    """A LossFn that can also be evaluated with its parameters (tf.Variables, in order) replaced
    by tensors: `at(values, batch)`. Forward-mode autodiff can then differentiate along a
    direction of parameter space through a tensor (nested ForwardAccumulators cannot watch
    variables). `keras_loss.ClassificationLoss` is one."""

    parameters: Sequence[tf.Variable]

    def __call__(self, batch: Batch) -> tf.Tensor: ...

    def at(self, values: Sequence[tf.Tensor], batch: Batch) -> tf.Tensor: ...


def num_examples(batch: Batch) -> int:
    """Number of examples in an in-memory batch (the leading dimension of its first tensor)."""
    leaves = tf.nest.flatten(batch)
    if not leaves:
        raise ValueError("batch: holds no tensors")
    n = leaves[0].shape[0]
    return int(n if n is not None else tf.shape(leaves[0])[0])


def batch_signature(batch: Batch) -> Any:
    """TensorSpecs of a batch with the example dimension left open (one trace for all sizes)."""
    return tf.nest.map_structure(
        lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype),
        tf.nest.map_structure(tf.convert_to_tensor, batch),
    )


def as_batches(batches: Any) -> list[Batch]:
    """A sample given as batches: a list (or other iterable) of batches; a tuple such as
    `(x, y)` or a dict is ONE batch (never its x and y as two batches)."""
    if isinstance(batches, tuple | dict) or tf.is_tensor(batches):
        return [batches]
    return list(batches)


def split_batches(batch: Batch, size: int) -> list[Batch]:
    """Cut an in-memory batch into consecutive batches of at most `size` examples."""
    n = num_examples(batch)
    return [tf.nest.map_structure(lambda t, a=a: t[a : a + size], batch) for a in range(0, n, size)]


def shard_bounds(n: int, replicas: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) of each replica's shard of n examples: the first n % replicas
    shards hold one example more; shards are empty when n < replicas."""
    if replicas < 1 or n < 0:
        raise ValueError(f"shard_bounds: need n >= 0 and replicas >= 1, got {n}, {replicas}")
    base, extra = divmod(int(n), int(replicas))
    bounds, start = [], 0
    for r in range(replicas):
        stop = start + base + (1 if r < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def distribute_batch(strategy: tf.distribute.Strategy, batch: Batch):
    """Per-replica shards of an in-memory batch (a nest of tensors, examples along axis 0),
    uneven sizes and empty shards allowed; each replica (global id r) gets `shard_bounds`[r]."""
    batch = tf.nest.map_structure(tf.convert_to_tensor, batch)
    bounds = shard_bounds(num_examples(batch), strategy.num_replicas_in_sync)

    def value_fn(ctx: tf.distribute.DistributedContext):
        a, b = bounds[ctx.replica_id_in_sync_group]
        return tf.nest.map_structure(lambda t: tf.identity(t[a:b]), batch)

    return strategy.experimental_distribute_values_from_function(value_fn)


def is_distributed(batch: Batch) -> bool:
    """True for the result of `distribute_batch` (a nest of per-replica values)."""
    return any(isinstance(t, tf.distribute.DistributedValues) for t in tf.nest.flatten(batch))


def replica_sum(strategy: tf.distribute.Strategy, fn: Callable, dist_batch, *args):
    """Inside a `tf.function`: the sum over replicas of `fn(shard, *args)` (a nest of tensors)."""
    per_replica = strategy.run(fn, args=(dist_batch, *args))
    # One reduction per leaf: MultiWorkerMirroredStrategy cannot reduce a nest of tensors of
    # different shapes in one call.
    return tf.nest.map_structure(
        lambda t: strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None), per_replica
    )


def replica_concat(strategy: tf.distribute.Strategy, fn: Callable, dist_batch, *args):
    """Inside a `tf.function`: `fn(shard, *args)`'s per-example values, gathered in example
    order."""
    per_replica = strategy.run(fn, args=(dist_batch, *args))
    return tf.nest.map_structure(lambda t: strategy.gather(t, axis=0), per_replica)


class BatchFunction:
    """`fn(batch, *args)` over the examples of a batch, as one `tf.function`, on one device or
    across the replicas of `strategy`.

    `fn` returns a nest of tensors that are SUMS over the batch's examples (`gather=False`: the
    replicas' sums are added) or PER-EXAMPLE values along axis 0 (`gather=True`: gathered in
    example order). `arg_specs` are the TensorSpecs of `*args`. On one device the function is
    traced once per batch structure (leading dimension left open); under a strategy shapes are
    relaxed after the first retrace (shards of one batch may differ in size by one). With
    `exact_shapes` it is traced once per batch shape instead, for bodies that need a static
    batch size (TensorFlow's nested forward mode cannot differentiate the Shape op that a
    layer such as Keras' Flatten applies to a tensor of unknown batch size).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        strategy: tf.distribute.Strategy | None = None,
        gather: bool = False,
        arg_specs: Sequence[tf.TensorSpec] = (),
        exact_shapes: bool = False,
    ):
        self.fn = fn
        self.strategy = strategy
        self.gather = gather
        self.arg_specs = tuple(arg_specs)
        self.exact_shapes = exact_shapes
        self._call = None
        if strategy is not None:
            reduce = replica_concat if gather else replica_sum
            self._call = tf.function(
                lambda dist_batch, *args: reduce(strategy, fn, dist_batch, *args),
                reduce_retracing=not exact_shapes,
            )

    def prepare(self, batch: Batch) -> Batch:
        """`batch` as tensors, sharded across the replicas under a strategy: prepare a fixed
        sample once and call the function on it many times."""
        if self.strategy is not None:
            return batch if is_distributed(batch) else distribute_batch(self.strategy, batch)
        return tf.nest.map_structure(tf.convert_to_tensor, batch)

    def __call__(self, batch: Batch, *args):
        batch = self.prepare(batch)
        if self._call is None:
            if self.exact_shapes:
                self._call = tf.function(self.fn, reduce_retracing=False)
            else:
                self._call = tf.function(
                    self.fn, input_signature=[batch_signature(batch), *self.arg_specs]
                )
        return self._call(batch, *args)

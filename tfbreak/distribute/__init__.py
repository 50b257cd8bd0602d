"""Scale-out on `tf.distribute`: strategies, uneven batch sharding and cross-replica sums.

Every per-batch quantity of the measurement core and the SGD step is a SUM over examples
(losses, gradients, HVPs of summed losses) or a list of per-example values. Under a strategy
each replica gets a contiguous shard of the batch (`shard_bounds`: sizes differ by at most one,
shards may be empty, e.g. 2 examples on 3 replicas), computes the sum over its shard, and the
shards' sums are added with a cross-replica SUM; the caller divides by the batch's example
count, so the result is the single-device value up to floating-point reordering (never a mean
of per-replica means). Per-example values are gathered in example order.

Multi-worker (`MultiWorkerMirroredStrategy`, TF_CONFIG): every worker builds the same batches
(data order is a function of the seed) and keeps only its replicas' shards; host-side numerics
(Lanczos, Gram eigensolves) run on every worker on identical all-reduced inputs, so all workers
take the same path through them. Only the chief writes the run directory (`is_chief`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import tensorflow as tf

STRATEGIES: tuple[str, ...] = ("default", "mirrored", "multi_worker")
"""default: no tf.distribute strategy (today's single-device code paths); mirrored:
`MirroredStrategy` over all local GPUs (all logical CPUs when there is no GPU); multi_worker:
`MultiWorkerMirroredStrategy` configured by the TF_CONFIG environment variable."""

_CACHE: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy | None:
    """The strategy called `name` (one of `STRATEGIES`); None for "default".

    Strategies are created once per process (MultiWorkerMirroredStrategy must be created
    before TensorFlow runs anything else and only once), so a sweep reuses it."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy: expected one of {STRATEGIES}, got {name!r}")
    if name == "default":
        return None
    if name not in _CACHE:
        if name == "mirrored":
            gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
            cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
            _CACHE[name] = tf.distribute.MirroredStrategy(gpus or cpus)
        else:
            _CACHE[name] = tf.distribute.MultiWorkerMirroredStrategy()
    return _CACHE[name]


def scope(strategy: tf.distribute.Strategy | None):
    """`strategy.scope()`, or a no-op context without a strategy."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def num_replicas(strategy: tf.distribute.Strategy | None) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def task(strategy: tf.distribute.Strategy | None) -> tuple[str | None, int | None]:
    """(task_type, task_id) of this process in a multi-worker cluster; (None, None) otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """True for the process that writes the run directory: always without a cluster; else the
    "chief" task, or worker 0 when the cluster has no chief (TF's convention)."""
    task_type, task_id = task(strategy)
    if task_type is None:
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_dir(strategy: tf.distribute.Strategy | None, path: str | os.PathLike) -> str:
    """Where this process saves checkpoints: `path` on the chief, a fresh temporary directory
    on the other workers (TF's recommendation for MultiWorkerMirroredStrategy: every worker
    saves, only the chief's copy is kept). Remove it with `cleanup_worker_dir`."""
    if is_chief(strategy):
        return str(path)
    task_type, task_id = task(strategy)
    return tempfile.mkdtemp(prefix=f"tfbreak_{task_type}{task_id}_")


def cleanup_worker_dir(strategy: tf.distribute.Strategy | None, path: str) -> None:
    if not is_chief(strategy):
        shutil.rmtree(path, ignore_errors=True)


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


def _num_examples(batch: Any) -> int:
    leaves = tf.nest.flatten(batch)
    if not leaves:
        raise ValueError("batch: holds no tensors")
    n = leaves[0].shape[0]
    return int(n if n is not None else tf.shape(leaves[0])[0])


def distribute_batch(strategy: tf.distribute.Strategy, batch: Any):
    """Per-replica shards of an in-memory batch (a nest of tensors, examples along axis 0),
    uneven sizes and empty shards allowed; each replica (global id r) gets `shard_bounds`[r]."""
    batch = tf.nest.map_structure(tf.convert_to_tensor, batch)
    bounds = shard_bounds(_num_examples(batch), strategy.num_replicas_in_sync)

    def value_fn(ctx: tf.distribute.DistributedContext):
        a, b = bounds[ctx.replica_id_in_sync_group]
        return tf.nest.map_structure(lambda t: tf.identity(t[a:b]), batch)

    return strategy.experimental_distribute_values_from_function(value_fn)


def is_distributed(batch: Any) -> bool:
    """True for the result of `distribute_batch` (a nest of per-replica values)."""
    return any(isinstance(t, tf.distribute.DistributedValues) for t in tf.nest.flatten(batch))


class _Distributed:
    """Shared machinery: `fn(shard, *args)` run on every replica inside one `tf.function`."""

    def __init__(self, strategy: tf.distribute.Strategy, fn: Callable[..., Any]):
        self.strategy = strategy
        self.fn = fn
        # Shards of one batch may differ in size (uneven split), so the shapes are relaxed
        # after the first retrace instead of retracing per shard-size combination.
        self._call = tf.function(self.in_graph, reduce_retracing=True)

    def distribute(self, batch: Any):
        return distribute_batch(self.strategy, batch)

    def __call__(self, batch: Any, *args):
        """`batch` in memory (sharded here) or already distributed by `distribute`."""
        if not is_distributed(batch):
            batch = self.distribute(batch)
        return self._call(batch, *args)

    def in_graph(self, dist_batch, *args):  # pragma: no cover - overridden
        raise NotImplementedError


class ReplicaSum(_Distributed):
    """`ReplicaSum(strategy, fn)(batch, *args)` = sum over replicas of `fn(shard, *args)` (a
    nest of tensors); `in_graph` does the same inside the caller's `tf.function`."""

    def in_graph(self, dist_batch, *args):
        per_replica = self.strategy.run(self.fn, args=(dist_batch, *args))
        # One reduction per leaf: MultiWorkerMirroredStrategy cannot reduce a nest of
        # tensors of different shapes in one call.
        return tf.nest.map_structure(
            lambda t: self.strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None), per_replica
        )


class ReplicaConcat(_Distributed):
    """`ReplicaConcat(strategy, fn)(batch, *args)`: `fn(shard, *args)` returns per-example
    values (leading axis = the shard's examples); they are gathered in example order."""

    def in_graph(self, dist_batch, *args):
        per_replica = self.strategy.run(self.fn, args=(dist_batch, *args))
        return tf.nest.map_structure(lambda t: self.strategy.gather(t, axis=0), per_replica)


def shard_count(shard: Any, dtype: tf.DType) -> tf.Tensor:
    """Number of examples of a replica's shard as a scalar of `dtype` (to sum with the rest)."""
    return tf.cast(tf.shape(tf.nest.flatten(shard)[0])[0], dtype)


class NullWriter:
    """Stands in for `tfbreak.runs.RunWriter` on non-chief workers: writes nothing."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = run_dir

    def _nothing(self, *args, **kwargs) -> None:
        return None

    append = save_arrays = finish = close = write_flags = write_metadata = _nothing
    update_metadata = truncate_after = _nothing


def tf_config_for(worker_ports: list[int], index: int) -> str:
    """TF_CONFIG JSON of worker `index` in a localhost cluster of `len(worker_ports)` workers."""
    workers = [f"127.0.0.1:{p}" for p in worker_ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


__all__ = [
    "STRATEGIES",
    "NullWriter",
    "ReplicaConcat",
    "ReplicaSum",
    "cleanup_worker_dir",
    "distribute_batch",
    "is_distributed",
    "is_chief",
    "make_strategy",
    "num_replicas",
    "scope",
    "shard_bounds",
    "shard_count",
    "task",
    "tf_config_for",
    "worker_dir",
]

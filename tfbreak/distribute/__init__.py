"""Scale-out on `tf.distribute`: which strategy, which process writes, where checkpoints go.

How batches are split across replicas and summed is `tfbreak.curvature.sharding` (the one
dispatch of the measurement core and the SGD step).

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

import tensorflow as tf

from tfbreak.config import STRATEGIES

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


class NullWriter:
    """Stands in for `tfbreak.runs.RunWriter` on non-chief workers: writes nothing."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = run_dir

    def _nothing(self, *args, **kwargs) -> None:
        return None

    append = save_arrays = finish = close = write_flags = write_metadata = _nothing
    update_metadata = truncate_after = rebuild_tensorboard = check_present = _nothing


def tf_config_for(worker_ports: list[int], index: int) -> str:
    """TF_CONFIG JSON of worker `index` in a localhost cluster of `len(worker_ports)` workers."""
    workers = [f"127.0.0.1:{p}" for p in worker_ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


__all__ = [
    "STRATEGIES",
    "NullWriter",
    "cleanup_worker_dir",
    "is_chief",
    "make_strategy",
    "num_replicas",
    "scope",
    "task",
    "tf_config_for",
    "worker_dir",
]

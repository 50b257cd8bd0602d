"""The reshuffling of a user's tf.data pipeline: read its examples without drawing its next
order, and replay the orders a resumed `model.fit` drew before it was killed.

`Dataset.shuffle` reshuffles at every pass by default: each iterator created on the pipeline
(each epoch of `fit`, each pass of `repeat()`) draws the next seeds of the shuffle's seed
generator, which every dataset built from it shares. Two consequences for a measurement:

- Reading the pipeline to collect its examples would draw an order and shift every later epoch
  of the training. `without_shuffles` rebuilds the pipeline from its graph with its shuffle
  steps left out (the examples of one pass are the same; shuffles inside functions, e.g. of an
  `interleave`, are kept), so that reading it leaves the training's orders untouched.
- A fit killed and rerun starts a fresh process whose seed generators begin again at their
  first order; Keras's BackupAndRestore restores the model, not the pipeline. `replay(dataset,
  draws)` draws `draws` orders from every reshuffling shuffle of the pipeline (by creating
  iterators on the pipeline cut at that shuffle, which reads nothing), so that the resumed
  epochs see the orders the uninterrupted fit saw. `ShuffleReplay.draws_before` says how many:
  for a finite pipeline, the iterators Keras's epoch loop creates in the completed epochs; for
  `shuffle(...)...repeat()` with `steps_per_epoch` a whole number of passes, the passes done.

Both work on the pipeline's serialized graph (`Dataset._as_serialized_graph`, the mechanism
tf.distribute uses to rebuild datasets); a pipeline that cannot be serialized is read as it is
and its orders cannot be replayed (a one-line warning at resume says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.python.data.ops import options as options_lib

SHUFFLE_OPS = frozenset({"ShuffleDataset", "ShuffleDatasetV2", "ShuffleDatasetV3"})
RETVAL = "_Retval"


def _graph(dataset: tf.data.Dataset) -> graph_pb2.GraphDef | None:
    try:
        serialized = dataset._as_serialized_graph(
            external_state_policy=options_lib.ExternalStatePolicy.IGNORE
        )
        return graph_pb2.GraphDef.FromString(serialized.numpy())
    except Exception:  # a pipeline TensorFlow cannot serialize (e.g. capturing a resource)
        return None


def _from_graph(graph: graph_pb2.GraphDef, structure) -> tf.data.Dataset:
    variant = tf.raw_ops.DatasetFromGraph(graph_def=graph.SerializeToString())
    return tf.data.experimental.from_variant(variant, structure)


def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def _output(graph: graph_pb2.GraphDef) -> graph_pb2.NodeDef:
    (ret,) = [n for n in graph.node if n.op == RETVAL]
    return ret


def without_shuffles(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with its shuffle steps left out (its examples, in their unshuffled order; the
    seed generators of its shuffles are not drawn from). `dataset` itself when its graph
    cannot be rebuilt or it has no shuffle."""
    graph = _graph(dataset)
    if graph is None:
        return dataset
    shuffles = {n.name: _node_name(n.input[0]) for n in graph.node if n.op in SHUFFLE_OPS}
    if not shuffles:
        return dataset

    def source(name: str) -> str:
        while name in shuffles:
            name = shuffles[name]
        return name

    rebuilt = graph_pb2.GraphDef()
    rebuilt.CopyFrom(graph)
    del rebuilt.node[:]
    for node in graph.node:
        if node.name in shuffles:
            continue
        copy = rebuilt.node.add()
        copy.CopyFrom(node)
        for i, ref in enumerate(copy.input):
            name = _node_name(ref)
            if name in shuffles:
                copy.input[i] = ref.replace(name, source(name), 1)
    try:
        return _from_graph(rebuilt, dataset.element_spec)
    except Exception:
        return dataset


def _downstream(graph: graph_pb2.GraphDef) -> dict[str, list[graph_pb2.NodeDef]]:
    """Node name -> the dataset nodes between it and the pipeline's output (its consumers,
    transitively)."""
    by_name = {n.name: n for n in graph.node}
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for ref in node.input:
            consumers.setdefault(_node_name(ref), []).append(node.name)
    out: dict[str, list[graph_pb2.NodeDef]] = {}
    for name in by_name:
        seen, stack = set(), list(consumers.get(name, []))
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(consumers.get(n, []))
        out[name] = [by_name[n] for n in seen]
    return out


def _repeat_count(graph: graph_pb2.GraphDef, node: graph_pb2.NodeDef) -> int | None:
    by_name = {n.name: n for n in graph.node}
    count = by_name.get(_node_name(node.input[1]))
    values = count.attr["value"].tensor.int64_val if count is not None else []
    return int(values[0]) if len(values) == 1 else None


def _structure(node: graph_pb2.NodeDef) -> tuple[tf.TensorSpec, ...]:
    types = node.attr["output_types"].list.type
    shapes = node.attr["output_shapes"].list.shape
    return tuple(
        tf.TensorSpec(tf.TensorShape(s), tf.dtypes.as_dtype(t))
        for t, s in zip(types, shapes, strict=True)
    )


@dataclass(frozen=True)
class ShuffleReplay:
    """The reshuffling shuffles of a pipeline and how their draws can be replayed.

    `cuts`: one dataset per reshuffling shuffle, the pipeline cut at it (an iterator on it
    draws one order and reads nothing); `per_pass`: True when every such shuffle lies upstream
    of an infinite `repeat()` (it draws at every pass), False when no `repeat` follows it (it
    draws at every iterator of the pipeline); None when neither holds for all of them (the
    draws cannot be counted); `infinite`: the pipeline never ends (then a shuffle after the
    repeat orders one endless stream, which no count of draws restores)."""

    cuts: tuple[tf.data.Dataset, ...]
    per_pass: bool | None
    infinite: bool = False

    @classmethod
    def of(cls, dataset: tf.data.Dataset) -> ShuffleReplay | None:
        """The replay of `dataset`'s reshuffling; None when it cannot be built (graph not
        serializable); `cuts` empty when nothing reshuffles."""
        graph = _graph(dataset)
        if graph is None:
            return None
        downstream = _downstream(graph)
        reshuffling = [
            n for n in graph.node if n.op in SHUFFLE_OPS and n.attr["reshuffle_each_iteration"].b
        ]
        kinds = set()
        for node in reshuffling:
            repeats = [r for r in downstream[node.name] if r.op == "RepeatDataset"]
            counts = {_repeat_count(graph, r) for r in repeats}
            kinds.add(False if not repeats else (True if counts == {-1} else None))
        cuts = []
        for node in reshuffling:
            cut = graph_pb2.GraphDef()
            cut.CopyFrom(graph)
            _output(cut).input[:] = [node.name]
            cuts.append(_from_graph(cut, _structure(node)))
        infinite = int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY
        if not kinds:
            return cls((), False, infinite)
        return cls(tuple(cuts), kinds.pop() if len(kinds) == 1 else None, infinite)

    def draws_before(
        self,
        epoch: int,
        *,
        steps_per_epoch: int,
        batches_per_pass: int | None,
        keras_iterators: int | None,
    ) -> int | None:
        """The orders each shuffle drew before `epoch` of a fit (None: not countable):
        `keras_iterators` (the iterators fit created in the epochs before) when it draws per
        iterator; the passes before the epoch when it draws per pass of an infinite repeat and
        the epoch starts a pass (`batches_per_pass` batches in one)."""
        if self.per_pass is None:
            return None
        if not self.per_pass:
            return None if self.infinite else keras_iterators
        if not batches_per_pass or epoch * steps_per_epoch % batches_per_pass:
            return None
        return epoch * steps_per_epoch // batches_per_pass

    def replay(self, draws: int) -> None:
        """Draw `draws` orders from every reshuffling shuffle."""
        for cut in self.cuts:
            for _ in range(draws):
                iter(cut)


def keras_iterators(epochs: int, num_batches: int, cardinality: int, steps_per_epoch) -> int:
    """The iterators `model.fit`'s epoch loop creates on its data in `epochs` epochs (Keras's
    own `EpochIterator` run over a stand-in of the same size and cardinality: a finite
    dataset of known cardinality gets two per epoch, one of unknown cardinality one per epoch,
    an infinite one with `steps_per_epoch` one for the whole fit)."""
    from keras.src.trainers.epoch_iterator import EpochIterator

    zeros = np.zeros((max(int(num_batches), 1), 1), np.float32)
    stand_in = tf.data.Dataset.from_tensor_slices((zeros, zeros))
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        stand_in = stand_in.filter(lambda *_: True)
    elif cardinality == tf.data.INFINITE_CARDINALITY:
        stand_in = stand_in.repeat()
    created = []

    class Counting(EpochIterator):
        def _get_iterator(self):
            created.append(1)
            return super()._get_iterator()

    loop = Counting(x=stand_in, steps_per_epoch=steps_per_epoch, shuffle=False)
    loop.reset()
    for _ in range(int(epochs)):
        with loop.catch_stop_iteration():
            for _ in loop:
                pass
    return len(created)

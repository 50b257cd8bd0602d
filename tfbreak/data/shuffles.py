"""The reshuffling of a user's tf.data pipeline: read one pass of its examples without drawing
its next order, and replay the orders a resumed `model.fit` drew before it was killed.

`Dataset.shuffle` reshuffles at every pass by default: each iterator created on the pipeline
(each epoch of `fit`, each pass of `repeat()`) draws the next seeds of the shuffle's seed
generator, which every dataset built on it shares. Two consequences for a measurement:

- Reading the pipeline to collect its examples would draw an order and shift every later epoch
  of the training. `one_pass` finds, below the steps that keep the examples of a pass
  (shuffle, batch, unbatch, repeat, prefetch, cache, options), the dataset whose one pass holds
  them: reading it draws nothing from those shuffles, repeats nothing, and costs one pass of the
  pipeline's own source. A reshuffling shuffle further down, below a step that changes the
  examples (`shuffle().map(f)`), is left out by rebuilding that part from its serialized graph
  (`without_shuffles`; slower for pipelines that hold large arrays).
- A fit killed and rerun starts a fresh process whose seed generators begin again at their
  first order; Keras's BackupAndRestore restores the model, not the pipeline. `ShuffleReplay`
  draws the orders the killed process drew (creating an iterator on a shuffle draws one and
  reads nothing), so that the resumed epochs see the orders of the uninterrupted fit: for a
  finite pipeline, one per iterator Keras's epoch loop created in the completed epochs
  (`keras_iterators`); for `shuffle(...)...repeat()` with `steps_per_epoch` a whole number of
  passes, one per pass done.

These read tf.data's Python dataset objects (`_inputs()`, the shuffle's reshuffle flag, the
repeat count, the batch size): what tf.data's own tools read. A shuffle they cannot reach (behind
a dataset that does not list its inputs) is neither left out nor replayed; a reshuffling
pipeline whose draws cannot be counted (a shuffle under a finite `repeat`) is replayed not at
all, with a one-line warning at resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.python.data.ops import options as options_lib

SHUFFLE_OPS = frozenset({"ShuffleDataset", "ShuffleDatasetV2", "ShuffleDatasetV3"})
PASS_STEPS = frozenset(
    {
        "_ShuffleDataset",
        "_BatchDataset",
        "_UnbatchDataset",
        "_RepeatDataset",
        "_PrefetchDataset",
        "CacheDataset",
        "_OptionsDataset",
    }
)
"""tf.data's dataset classes that keep the examples of one pass (as a multiset)."""


def _kind(dataset: tf.data.Dataset) -> str:
    return type(dataset).__name__


def _inputs(dataset: tf.data.Dataset) -> list[tf.data.Dataset]:
    try:
        return list(dataset._inputs())
    except Exception:  # a dataset class that does not list its inputs
        return []


def _reshuffles(dataset: tf.data.Dataset) -> bool:
    return _kind(dataset) == "_ShuffleDataset" and bool(
        getattr(dataset, "_reshuffle_each_iteration", False)
    )


def _walk(dataset: tf.data.Dataset, below: tuple = ()) -> Iterator[tuple]:
    """(node, the nodes between it and the pipeline's end) for every node of the pipeline."""
    yield dataset, below
    for child in _inputs(dataset):
        yield from _walk(child, (*below, dataset))


def reshuffling(dataset: tf.data.Dataset) -> bool:
    """Whether iterating `dataset` draws an order from a reshuffling shuffle."""
    return any(_reshuffles(node) for node, _ in _walk(dataset))


@dataclass(frozen=True)
class Pass:
    """`dataset`: a dataset whose one pass holds the examples of one pass of a pipeline;
    `batching`: (batch size, drop_remainder) of the pipeline's one batching step between it
    and the first `repeat` (None when there is none, or more, or a repeat before it)."""

    dataset: tf.data.Dataset
    batching: tuple[int, bool] | None = None

    def batches(self, num_examples: int) -> int | None:
        """Batches in one pass of the pipeline of `num_examples` examples."""
        if self.batching is None:
            return None
        size, drop = self.batching
        return num_examples // size if drop else -(-num_examples // size)


def one_pass(dataset: tf.data.Dataset) -> Pass:
    """The dataset below `dataset`'s pass-keeping steps (`PASS_STEPS`); it is read to collect
    one pass of examples. With a reshuffling shuffle below a step that changes the examples,
    that dataset rebuilt without its shuffles (`without_shuffles`)."""
    steps = []
    node = dataset
    while _kind(node) in PASS_STEPS and len(_inputs(node)) == 1:
        steps.append(node)
        node = _inputs(node)[0]
    if reshuffling(node):
        node = without_shuffles(node)
    kinds = [_kind(s) for s in steps]
    batching = None
    if kinds.count("_BatchDataset") == 1 and "_UnbatchDataset" not in kinds:
        at = kinds.index("_BatchDataset")
        if "_RepeatDataset" not in kinds[at:]:  # no repeat between the batches and the source
            batch = steps[at]
            batching = (int(batch._batch_size), bool(batch._drop_remainder))
    return Pass(node, batching)


def _graph(dataset: tf.data.Dataset) -> graph_pb2.GraphDef | None:
    try:
        serialized = dataset._as_serialized_graph(
            external_state_policy=options_lib.ExternalStatePolicy.IGNORE
        )
        return graph_pb2.GraphDef.FromString(serialized.numpy())
    except Exception:  # a pipeline TensorFlow cannot serialize (e.g. capturing a resource)
        return None


def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def without_shuffles(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` rebuilt from its serialized graph with its shuffle steps left out (its
    examples, unshuffled; no order is drawn from its shuffles). `dataset` itself when its graph
    cannot be rebuilt (then reading it draws an order)."""
    graph = _graph(dataset)
    if graph is None:
        return dataset
    shuffles = {n.name: _node_name(n.input[0]) for n in graph.node if n.op in SHUFFLE_OPS}

    def source(name: str) -> str:
        while name in shuffles:
            name = shuffles[name]
        return name

    kept = [n for n in graph.node if n.name not in shuffles]
    del graph.node[:]
    for node in kept:
        for i, ref in enumerate(node.input):
            name = _node_name(ref)
            if name in shuffles:
                node.input[i] = ref.replace(name, source(name), 1)
    graph.node.extend(kept)
    try:
        variant = tf.raw_ops.DatasetFromGraph(graph_def=graph.SerializeToString())
        return tf.data.experimental.from_variant(variant, dataset.element_spec)
    except Exception:
        return dataset


@dataclass(frozen=True)
class ShuffleReplay:
    """The reshuffling shuffles of a pipeline and how their draws can be replayed.

    `shuffles`: each reshuffling shuffle dataset (once per way it is reached); `per_pass`: True
    when every one lies below an infinite `repeat()` (it draws at every pass), False when no
    `repeat` follows it (it draws at every iterator of the pipeline), None when neither holds
    for all of them (the draws cannot be counted); `infinite`: the pipeline never ends (a
    shuffle after its repeat then orders one endless stream, which no count of draws
    restores)."""

    shuffles: tuple[tf.data.Dataset, ...]
    per_pass: bool | None
    infinite: bool = False

    @classmethod
    def of(cls, dataset: tf.data.Dataset) -> ShuffleReplay:
        infinite = int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY
        found, kinds = [], set()
        for node, below in _walk(dataset):
            if not _reshuffles(node):
                continue
            found.append(node)
            counts = {int(r._count) for r in below if _kind(r) == "_RepeatDataset"}
            kinds.add(False if not counts else (True if counts == {-1} else None))
        if not found:
            return cls((), False, infinite)
        return cls(tuple(found), kinds.pop() if len(kinds) == 1 else None, infinite)

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
        """Draw `draws` orders from every reshuffling shuffle (an iterator on a shuffle draws
        one when it is created and reads nothing until asked)."""
        for shuffle in self.shuffles:
            for _ in range(draws):
                iter(shuffle)


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

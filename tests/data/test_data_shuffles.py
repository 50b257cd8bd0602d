"""A pipeline's reshuffling: read without drawing an order, and replayed so that a fit resumed
at epoch e in a fresh pipeline trains on the batches of the uninterrupted fit's epochs e, e+1."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbreak.data.shuffles import ShuffleReplay, keras_iterators, one_pass, without_shuffles

N, S, EPOCHS = 16, 4, 4


def _pipeline(kind: str) -> tf.data.Dataset:
    keras.utils.set_random_seed(0)  # the shuffle's seeds, as a script would set them
    x = np.arange(N, dtype=np.float32)[:, None]
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(N, np.int32))).shuffle(N).batch(S)
    if kind == "unknown size":
        ds = ds.filter(lambda a, b: True)
    if kind == "repeat":
        ds = ds.repeat()
    return ds.prefetch(2)


def _epochs_trained(kind: str, start: int) -> list[list[int]]:
    """The examples of each epoch a fit from epoch `start` trains on (a fresh pipeline, its
    reshuffling replayed for the epochs before `start`)."""
    data = _pipeline(kind)
    seen = []

    def record(x):
        seen.append(x.numpy().ravel().astype(int).tolist())
        return x

    traced = data.map(
        lambda x, y: (tf.ensure_shape(tf.py_function(record, [x], tf.float32), [None, 1]), y)
    )
    steps = N // S if kind == "repeat" else None
    if start:
        replay = ShuffleReplay.of(data)
        created = keras_iterators(start, N // S, int(data.cardinality()), steps)
        draws = replay.draws_before(
            start, steps_per_epoch=N // S, batches_per_pass=N // S, keras_iterators=created
        )
        replay.replay(draws)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(traced, epochs=EPOCHS, initial_epoch=start, steps_per_epoch=steps, verbose=0)
    batches = seen[: (EPOCHS - start) * (N // S)]  # prefetching may read ahead
    return [sum(batches[i : i + N // S], []) for i in range(0, len(batches), N // S)]


@pytest.mark.parametrize("kind", ["known size", "unknown size", "repeat"])
def test_a_replayed_pipeline_trains_on_the_uninterrupted_epochs(kind):
    uninterrupted = _epochs_trained(kind, 0)
    assert uninterrupted[0] != uninterrupted[1]  # it does reshuffle
    assert _epochs_trained(kind, 2) == uninterrupted[2:]


def test_what_can_be_replayed():
    x = tf.data.Dataset.range(8)
    assert ShuffleReplay.of(x.batch(2)).shuffles == ()
    assert ShuffleReplay.of(x.shuffle(8, reshuffle_each_iteration=False)).shuffles == ()
    assert ShuffleReplay.of(x.shuffle(8).batch(2)).per_pass is False
    assert ShuffleReplay.of(x.shuffle(8).batch(2).repeat()).per_pass is True
    assert ShuffleReplay.of(x.shuffle(8).repeat(3)).per_pass is None  # a finite repeat
    continuous = ShuffleReplay.of(x.repeat().shuffle(8))  # one endless order across epochs
    assert (
        continuous.draws_before(2, steps_per_epoch=4, batches_per_pass=4, keras_iterators=1) is None
    )
    per_pass = ShuffleReplay.of(x.shuffle(8).batch(2).repeat())
    assert per_pass.draws_before(3, steps_per_epoch=4, batches_per_pass=4, keras_iterators=1) == 3
    assert (
        per_pass.draws_before(1, steps_per_epoch=3, batches_per_pass=4, keras_iterators=1) is None
    )


def test_one_pass_is_read_below_the_shuffles_batches_and_repeats():
    source = tf.data.Dataset.range(10).map(lambda i: i * 2)
    one = one_pass(source.cache().shuffle(10).batch(4).repeat().prefetch(2))
    assert one.dataset is source and one.batching == (4, False) and one.batches(10) == 3
    assert one_pass(source.shuffle(10).batch(4, drop_remainder=True)).batches(10) == 2
    assert one_pass(source.shuffle(10).repeat().batch(4)).batching is None  # across passes
    changed = one_pass(source.shuffle(10).map(lambda i: i + 1).batch(4))  # below a map
    assert list(changed.dataset.as_numpy_iterator()) == list(range(1, 20, 2))  # unshuffled


def test_without_shuffles_reads_the_examples_and_draws_nothing():
    tf.random.set_seed(1)
    shuffled = tf.data.Dataset.range(10).shuffle(10).map(lambda i: i * 2)
    first_order = list(shuffled.as_numpy_iterator())
    tf.random.set_seed(1)
    shuffled = tf.data.Dataset.range(10).shuffle(10).map(lambda i: i * 2)
    assert list(without_shuffles(shuffled).as_numpy_iterator()) == list(range(0, 20, 2))
    assert list(shuffled.as_numpy_iterator()) == first_order

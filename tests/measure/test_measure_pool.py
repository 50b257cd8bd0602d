"""The measurement pool: every form of the same examples (arrays, tf.data pipelines of any
kind, generators, PyDataset) gives the same pool, in the same order, whatever order the data
comes in; so Curvature and the callback measure the same samples on each of them."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbreak
from tfbreak.data import fixed_subset
from tfbreak.measure.inputs import as_examples, example_rank
from tfbreak.measure.pool import DEFAULT_POOL_BYTES, capacity, example_digests
from tfbreak.measure.samples import Samples
from tfbreak.measure.settings import MeasurementSettings
from tfbreak.validation import ConfigError

N, S = 96, 16
RNG = np.random.default_rng(0)
X = RNG.standard_normal((N, 5)).astype(np.float32)
Y = RNG.integers(0, 3, N).astype(np.int32)
ORDER = np.random.default_rng(1).permutation(N)


def _dataset(x=X, y=Y):
    return tf.data.Dataset.from_tensor_slices((x, y))


def _generator():
    while True:
        for a in range(0, N, S):
            yield X[ORDER[a : a + S]], Y[ORDER[a : a + S]]


class _Batches(keras.utils.PyDataset):
    def __len__(self):
        return N // S

    def __getitem__(self, i):
        index = ORDER[i * S : (i + 1) * S]
        return X[index], Y[index]


FORMS = {
    "batched": lambda: (_dataset().batch(S), {}),
    "shuffle": lambda: (_dataset().shuffle(N).batch(S), {}),
    "repeat": lambda: (_dataset().shuffle(N).batch(S).repeat(), {}),
    "repeat, num_examples": lambda: (_dataset().shuffle(N).batch(S).repeat(), {"num_examples": N}),
    "repeat then shuffle": lambda: (_dataset().repeat().shuffle(50).batch(S), {"num_examples": N}),
    "prefetch": lambda: (_dataset().shuffle(N).batch(S).prefetch(tf.data.AUTOTUNE), {}),
    "cache": lambda: (_dataset().cache().shuffle(N).batch(S), {}),
    "map": lambda: (
        _dataset(X / 2).shuffle(N).map(lambda x, y: (2 * x, y), num_parallel_calls=4).batch(S),
        {},
    ),
    "filter (unknown size)": lambda: (_dataset().filter(lambda x, y: True).shuffle(N), {}),
    "unbatched": lambda: (_dataset().shuffle(N), {}),
    "int64 labels": lambda: (_dataset(y=Y.astype(np.int64)).shuffle(N).batch(S), {}),
    "generator": lambda: (_generator(), {"num_examples": N}),
    "PyDataset": lambda: (_Batches(), {}),
}


@pytest.fixture(scope="module")
def arrays():
    return as_examples((X, Y), example_rank=1)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_gives_the_pool_of_the_arrays(form, arrays):
    data, kwargs = FORMS[form]()
    ex = as_examples(data, example_rank=1, **kwargs)
    assert (ex.size, ex.pool_size) == (N, N)
    assert ex.pool.fingerprint == arrays.pool.fingerprint
    x, y = ex.pool.examples
    np.testing.assert_array_equal(x, arrays.pool.examples[0])
    np.testing.assert_array_equal(y, arrays.pool.examples[1])
    index = tf.constant([3, 0, 95])
    for got, want in zip(ex.lookup(index), arrays.lookup(index), strict=True):
        np.testing.assert_array_equal(got, want)


def test_dict_inputs_give_the_pool_of_the_dict_arrays():
    """Dict inputs, batched with a static batch size (drop_remainder): the model's first input
    (dict keys sorted) tells batches from examples."""
    a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    model = keras.Model({"b": b, "a": a}, keras.layers.Concatenate()([a, b]))
    assert example_rank(model) == 1
    x = {"a": X[:, :2], "b": X[:, 2:]}
    want = as_examples((x, Y)).pool
    data = tf.data.Dataset.from_tensor_slices((x, Y)).shuffle(N).batch(S, drop_remainder=True)
    got = as_examples(data, example_rank=example_rank(model)).pool
    assert got.fingerprint == want.fingerprint
    for key in ("a", "b"):
        np.testing.assert_array_equal(got.examples[0][key], want.examples[0][key])


def test_the_pool_is_ordered_by_a_seeded_digest_of_each_example():
    """Example i sits at the rank of its digest: the order of the arrays does not matter, and
    another seed gives another order."""
    digests = example_digests([X, Y], seed=0)
    ex = as_examples((X[::-1], Y[::-1]))
    np.testing.assert_array_equal(ex.pool.examples[0], X[np.argsort(digests)])
    other = as_examples((X, Y), seed=1).pool
    assert other.fingerprint != ex.pool.fingerprint
    assert sorted(map(bytes, other.examples[0])) == sorted(map(bytes, X))  # the same examples


def test_a_capped_pool_is_the_same_random_subset_whatever_the_order():
    arrays = as_examples((X, Y), pool_size=20)
    shuffled = as_examples(_dataset().shuffle(N).batch(S), pool_size=20, example_rank=1)
    assert (arrays.size, arrays.pool_size) == (N, 20)
    assert shuffled.pool.fingerprint == arrays.pool.fingerprint
    kept = {bytes(r) for r in arrays.pool.examples[0]}
    assert kept <= {bytes(r) for r in X} and len(kept) == 20
    assert as_examples((X, Y), pool_size=20, seed=5).pool.fingerprint != arrays.pool.fingerprint


def test_default_capacity_bounds_examples_and_bytes():
    assert capacity(None, 4 * 784) == 100_000
    assert capacity(None, 224 * 224 * 3 * 4) == DEFAULT_POOL_BYTES // (224 * 224 * 3 * 4)
    assert capacity(7, 10**9) == 7
    with pytest.raises(ValueError, match=r"^pool_size: must be a positive integer"):
        capacity(0, None)


def test_reading_the_pool_draws_no_order_from_the_pipeline():
    """The pipeline's next pass is its first order, as if the pool had not read it."""

    def pipeline():
        tf.random.set_seed(3)
        return tf.data.Dataset.range(20).shuffle(20)

    untouched = list(pipeline().as_numpy_iterator())
    data = pipeline()
    as_examples(data.map(lambda i: (tf.cast(i, tf.float32)[None], i)))
    assert list(data.as_numpy_iterator()) == untouched


def test_curvature_twice_on_a_shuffled_dataset_is_identical():
    """The issue's case: two Curvatures at the same weights and seed on ds.shuffle(n).batch(b)
    (reshuffled at every pass) agree exactly, with the arrays too."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(3)]
    )
    data = _dataset().shuffle(N).batch(S)
    settings = dict(sample=32, lanczos_tol=1e-6, lanczos_max_iter=30)
    first, second = (tfbreak.Curvature(model, data, **settings) for _ in range(2))
    lam = first.top_eigenvalues(1).eigenvalues[0]
    assert second.top_eigenvalues(1).eigenvalues[0] == lam
    assert tfbreak.Curvature(model, (X, Y), **settings).top_eigenvalues(1).eigenvalues[0] == lam


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (
            _dataset().repeat().map(lambda x, y: (x, y)).batch(S),
            {},
            r"^num_examples: data is infinite \(repeat\(\)\)",
        ),
        (_generator(), {}, r"^num_examples: data is a Python generator"),
        (_dataset().batch(S), {"num_examples": N + 1}, r"^num_examples: data ended after 96"),
        (
            tf.data.Dataset.from_tensor_slices((X, Y, np.ones(N))).batch(S),
            {},
            r"^data: yields \(x, y, sample_weight\)",
        ),
    ],
    ids=["infinite", "generator", "too few", "sample weights"],
)
def test_data_the_pool_cannot_take_is_one_line(data, kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        as_examples(data, example_rank=1, **kwargs)
    assert "\n" not in str(err.value)


def test_samples_larger_than_the_pool_name_pool_size():
    ex = as_examples((X, Y), pool_size=10)
    settings = MeasurementSettings(k_L=4, k_M=(4,), measurements=("K",))
    with pytest.raises(ConfigError, match=r"^pool_size: K's L \* M examples needs 16 examples"):
        Samples(ex.dataset, None, settings, seed=0, batch_size=4, num_train=N, num_pool=10)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"^pool_size: the Hessian sample of 32 examples"):
        tfbreak.Curvature(model, (X, Y), sample=32, pool_size=10)


def test_the_samples_are_drawn_from_the_pool_by_index():
    """A pool's samples are gathered by its lookup: the same as scanning the pool's dataset."""
    ex = as_examples(_dataset().shuffle(N).batch(S), example_rank=1)
    for got, want in zip(
        fixed_subset(ex.dataset, 10, 7, lookup=ex.lookup),
        fixed_subset(ex.dataset, 10, 7),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)

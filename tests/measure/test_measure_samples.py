"""The samples a run measures on: K batches and the probe batch are drawn afresh at every
measurement (a function of seed and step: identical in a rerun or a resumed run), or once."""

import numpy as np
import pytest

from tfbreak.data import fixed_subset, load_dataset
from tfbreak.measure import MeasurementSettings
from tfbreak.measure.samples import Samples, SampleStream


@pytest.fixture(scope="module")
def bundle():
    return load_dataset("fashion_mnist")


def _samples(bundle, **settings):
    s = MeasurementSettings(k_L=4, hessian_sample_size=64, eval_subset=32, **settings)
    return Samples(
        bundle.train,
        bundle.test,
        s,
        seed=3,
        batch_size=16,
        num_train=bundle.num_train,
        num_test=bundle.num_test,
        lookup=bundle.train_lookup,
    )


def _arrays(batches):
    return [np.asarray(b[0]) for b in batches] + [np.asarray(b[1]) for b in batches]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b), strict=True))


def test_fresh_k_batches_differ_between_measurements_and_repeat_in_a_new_process(bundle):
    first, restarted = _samples(bundle), _samples(bundle)  # e.g. before and after a resume
    assert not _same(first.k_batches(10), first.k_batches(20))
    assert _same(first.k_batches(20), restarted.k_batches(20))
    assert not _same([first.probe(10)], [first.probe(20)])
    assert _same([first.probe(20)], [restarted.probe(20)])
    assert [len(b[1]) for b in first.k_batches(10)] == [16] * 4  # L = 4 batches of M = S = 16


def test_fixed_k_batches_are_the_same_at_every_measurement(bundle):
    fixed = _samples(bundle, k_batches="fixed", probe_batch="fixed")
    assert _same(fixed.k_batches(10), fixed.k_batches(500))
    assert _same([fixed.probe(10)], [fixed.probe(500)])
    # The fixed draw is tfbreak 0.1's (seed * 1000 + 2), gathered instead of scanned.
    scanned = fixed_subset(bundle.train, 64, SampleStream.K_BATCHES.seed(3))
    assert _same(
        [scanned], [tuple(np.concatenate(a) for a in zip(*fixed.k_batches(0), strict=True))]
    )


def test_per_example_k_and_a_second_size(bundle):
    two = _samples(bundle, k_M=(1, 8))
    (single,) = two.k_batches(7, 0)  # M = 1: one batch of L examples
    assert len(single[1]) == 4
    assert [len(b[1]) for b in two.k_batches(7, 1)] == [8] * 4
    assert not np.array_equal(np.asarray(single[0]), np.asarray(two.k_batches(7, 1)[0][0][:4]))

"""The adaptive Hessian sample (--hessian_target_error): the size rule, and a measurement that
grows its sample against exact dense references (float64: lambda_1 to 1e-8, the per-example
curvatures along e1_H and their standard error to 1e-6)."""

import warnings

import numpy as np
import pytest
import tensorflow as tf
from dense_reference import dense_hessian, tanh_mlp

from tfbreak.config import ConfigError
from tfbreak.curvature import classification_loss
from tfbreak.curvature.stability import DirectionalCurvature
from tfbreak.data import fixed_subset
from tfbreak.data.common import in_memory_dataset
from tfbreak.measure import MeasurementSettings
from tfbreak.measure.adaptive_sample import (
    MARGIN,
    SampleLadder,
    relative_error,
    required_size,
)
from tfbreak.measure.parts.hessian import HessianSampleWarning
from tfbreak.measure.samples import Samples, SampleStream
from tfbreak.measure.suite import build_suite
from tfbreak.runs import names

N, SEED = 400, 5


def test_required_size_gives_the_target_standard_error():
    values = np.random.default_rng(0).gamma(2.0, 1.5, 300)  # curvatures H_i of a sample
    curv = DirectionalCurvature(values)
    lam, population = 2.0, 50_000
    for target in (0.3, 0.05, 0.01, 0.002):
        n = required_size(curv, lam, target, population)
        s2u = np.var(values, ddof=1)
        se = np.sqrt(s2u / n * (population - n) / (population - 1))  # the formula at that n
        assert se == pytest.approx(target * lam, rel=1e-12)
        assert n < population
    assert required_size(curv, lam, 1e-9, population) == pytest.approx(population, rel=1e-6)
    assert relative_error(curv, lam, population) == curv.mean_stderr(population) / lam


def test_the_ladder_jumps_to_the_first_rung_above_the_required_size():
    ladder = SampleLadder(initial=100, maximum=1000, target=0.05)
    assert ladder.sizes() == [100, 200, 400, 800, 1000]
    assert SampleLadder(100, 100, 0.05).sizes() == [100]
    rng = np.random.default_rng(1)
    population = 100_000
    for spread in (0.2, 0.5, 1.0, 3.0):
        curv = DirectionalCurvature(1.0 + spread * rng.standard_normal(100))
        lam = curv.mean
        needed = MARGIN * required_size(curv, lam, 0.05, population)
        got = ladder.next_size(100, curv, lam, population)
        if relative_error(curv, lam, population) <= 0.05:
            assert got is None
        else:
            above = [n for n in ladder.sizes() if n > 100 and n >= needed]
            assert got == (above[0] if above else 1000)
    wide = DirectionalCurvature(1.0 + 3.0 * rng.standard_normal(100))
    assert ladder.next_size(1000, wide, 1.0, population) is None  # at the maximum
    assert ladder.next_size(800, wide, 1.0, population) == 1000


def _data(rng):
    model, _ = tanh_mlp(rng, n=1, d=5, hidden=6, classes=3)
    x = rng.standard_normal((N, 5))
    y = rng.integers(0, 3, N).astype(np.int32)
    return model, in_memory_dataset((x, y))


def _suite(model, data, **settings):
    train, lookup = data
    s = MeasurementSettings(
        measurements=("hessian", "breakeven"),
        hessian_sample_size=25,
        hessian_batch_size=64,
        top_k=2,
        lanczos_tol=1e-10,
        lanczos_max_iter=60,
        **settings,
    ).validate()
    loss_fn = classification_loss(model, bn_mode="inference")
    return build_suite(
        model,
        model.trainable_variables,
        loss_fn,
        s,
        train=train,
        test=None,
        num_train=N,
        num_test=0,
        batch_size=16,
        seed=SEED,
        update_fn=None,
        lookup=lookup,
    )


def _curvatures_along(variables, loss_fn, batch, e) -> np.ndarray:
    """e^T (d^2 l_i / d theta^2) e for every example, by two nested jacobians (exact)."""
    n = len(batch[1])

    def along(parts):  # (n, D) jacobian rows, times e
        return tf.concat([tf.reshape(p, [n, -1]) for p in parts], 1) @ e[:, None]

    @tf.function
    def curvatures():
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                losses = loss_fn(batch)
            slopes = along(inner.jacobian(losses, variables))[:, 0]
        return along(outer.jacobian(slopes, variables))[:, 0]

    return curvatures().numpy()


def _reference(model, data, size):
    """lambda_1(H) of the sample of `size` examples (dense, float64) and the curvatures along
    its e1."""
    train, lookup = data
    batch = fixed_subset(train, size, SampleStream.HESSIAN.seed(SEED), lookup=lookup)
    loss_fn = classification_loss(model, bn_mode="inference")
    h = dense_hessian(model.trainable_variables, loss_fn, [batch])
    w, v = np.linalg.eigh(h)
    curv = _curvatures_along(model.trainable_variables, loss_fn, batch, v[:, -1])
    return w[-1], DirectionalCurvature(curv)


def test_a_measurement_grows_its_sample_until_the_target_is_met():
    model, data = _data(np.random.default_rng(3))
    ladder = SampleLadder(25, 100, 0.0)  # hessian_max_fraction = 0.25 of N = 400
    refs = {n: _reference(model, data, n) for n in ladder.sizes()}
    errors = {n: relative_error(c, lam, N) for n, (lam, c) in refs.items()}
    # Targets between the errors at the first and the last rung: the sample must grow, to the
    # middle rung (a target just below the first error) or to the last.
    ends = []
    for target in (0.97 * errors[25], float(np.sqrt(errors[25] * errors[100]))):
        assert errors[100] < target < errors[25]
        expected, rule = 25, SampleLadder(25, 100, target)
        while (n := rule.next_size(expected, refs[expected][1], refs[expected][0], N)) is not None:
            expected = n
        ends.append(expected)
        suite = _suite(model, data, hessian_target_error=target)
        row, _ = suite.measure(0, 0.1)
        lam, curv = refs[expected]
        assert row[names.HESSIAN_SAMPLE_SIZE] == expected
        assert row[names.HESSIAN_LAMBDA_1] == pytest.approx(lam, rel=1e-8)
        assert row[names.BREAKEVEN_S2] == pytest.approx(curv.s2, rel=1e-6)
        assert row[names.HESSIAN_LAMBDA_1_STDERR] == pytest.approx(curv.mean_stderr(N), rel=1e-6)
        assert row[names.HESSIAN_LAMBDA_1_STDERR] <= target * row[names.HESSIAN_LAMBDA_1]
        assert suite.hessian.num_examples == expected  # Tr(H) and the density use that sample
    assert ends == [50, 100]

    # Without a target: the fixed sample, as before (no sample size in the row).
    fixed, _ = _suite(model, data).measure(0, 0.1)
    assert names.HESSIAN_SAMPLE_SIZE not in fixed
    assert fixed[names.HESSIAN_LAMBDA_1] == pytest.approx(refs[25][0], rel=1e-8)
    # A target the first sample meets: the same numbers as the fixed sample, bit for bit.
    met, _ = _suite(model, data, hessian_target_error=errors[25] * 1.01).measure(0, 0.1)
    assert met.pop(names.HESSIAN_SAMPLE_SIZE) == 25
    same = [names.HESSIAN_LAMBDA_1, names.HESSIAN_LAMBDA_1_STDERR, names.BREAKEVEN_S2]
    assert [met[k] for k in same] == [fixed[k] for k in same]


def test_an_unreachable_target_stops_at_the_largest_sample_and_warns_once():
    model, data = _data(np.random.default_rng(4))
    suite = _suite(model, data, hessian_target_error=1e-9, hessian_max_fraction=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = [suite.measure(step, 0.1)[0] for step in (0, 1)]
    assert [r[names.HESSIAN_SAMPLE_SIZE] for r in rows] == [40, 40]  # 0.1 * 400
    messages = [str(w.message) for w in caught if w.category is HessianSampleWarning]
    assert len(messages) == 1 and "--hessian_target_error=1e-09" in messages[0]


def test_nested_draws_and_bad_settings_name_their_flag():
    model, data = _data(np.random.default_rng(5))
    train, lookup = data
    s = MeasurementSettings(hessian_sample_size=30, hessian_target_error=0.1)
    samples = Samples(train, None, s, seed=SEED, batch_size=16, num_train=N, lookup=lookup)
    small = np.concatenate([np.asarray(b[0]) for b in samples.hessian_at(30)])
    large = np.concatenate([np.asarray(b[0]) for b in samples.hessian_at(60)])
    assert {r.tobytes() for r in small} <= {r.tobytes() for r in large}
    assert samples.hessian_at(30) is samples.hessian
    with pytest.raises(ConfigError, match="--hessian_max_fraction"):
        Samples(train, None, s.replace(hessian_max_fraction=0.05), seed=SEED, batch_size=16,
                num_train=N, lookup=lookup)  # fmt: skip
    with pytest.raises(ConfigError, match="--hessian_max_fraction"):  # before any data is read
        MeasurementSettings(hessian_max_fraction=0.01, hessian_target_error=0.1).validate()
    with pytest.raises(ConfigError, match="--hessian_target_error"):
        MeasurementSettings(measurements=("K",), hessian_target_error=0.1).validate()
    with pytest.raises(ConfigError, match="--hessian_target_error"):
        MeasurementSettings(hessian_target_error=-1.0).validate()

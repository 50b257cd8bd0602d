"""The measurement schedule and the run's length in O(number of measurements): the same steps
as the step-by-step definition, sizes refused up front. TensorFlow-free."""

from __future__ import annotations

import random
import sys

import pytest

from tfbreak.config import ConfigError
from tfbreak.measure.settings import MeasurementSettings
from tfbreak.training.schedules import (
    MAX_MEASUREMENTS,
    MAX_STEPS,
    MeasurementSchedule,
    log_steps,
    run_length,
)


def _due_by_definition(s: MeasurementSchedule, step: int) -> bool:
    """The class docstring's definition, step by step (the schedule before it was closed-form)."""
    if s.kind == "log":
        early = step in log_steps(s.per_decade, s.dense_until)
    else:
        early = step in range(0, s.dense_until + 1, s.dense_every)
    return step in (0, s.last_step) or early or step % s.every_steps == 0


def test_the_schedule_is_its_definition():
    rng = random.Random(0)
    for _ in range(300):
        s = MeasurementSchedule(
            rng.choice(["log", "linear"]),
            dense_every=rng.randint(1, 20),
            per_decade=rng.randint(1, 40),
            dense_until=rng.randint(0, 600),
            every_steps=rng.randint(1, 300),
            last_step=rng.randint(0, 900),
        )
        expected = [t for t in range(s.last_step + 1) if _due_by_definition(s, t)]
        assert s.steps() == expected, s
        assert [t for t in range(s.last_step + 1) if s.due(t)] == expected
        assert len(expected) <= s.count_bound()
    callback = MeasurementSchedule("linear", 10, 12, 50, 100, last_step=-1)  # no last step
    assert callback.steps() == [] and callback.due(40) and callback.due(300)
    assert not callback.due(55)


def test_huge_runs_cost_their_measurements_not_their_steps():
    settings = MeasurementSettings(measure_dense_until=MAX_STEPS, measure_per_decade=1000)
    schedule = MeasurementSchedule.of(settings, steps_per_epoch=1875, last_step=MAX_STEPS)
    steps = schedule.steps()  # a loop over 10^8 steps would take minutes
    assert steps[:3] == [0, 1, 2] and steps[-1] == MAX_STEPS
    assert len(steps) <= schedule.count_bound() <= MAX_MEASUREMENTS
    schedule.check_size()
    every = MeasurementSchedule.of(
        settings.replace(measure_every_epochs=1e-9), steps_per_epoch=937, last_step=MAX_STEPS
    )
    with pytest.raises(ConfigError, match=r"^--measure_every_epochs: the schedule measures up to"):
        every.check_size()
    linear = MeasurementSchedule.of(
        settings.replace(measure_schedule="linear", measure_dense_every=1), 937, MAX_STEPS
    )
    with pytest.raises(ConfigError, match=r"^--measure_dense_every: the schedule measures up to"):
        linear.check_size()


def test_run_length_and_its_maximum():
    assert run_length(60000, 64, 1.0, None) == (937, 937)
    assert run_length(60000, 64, 2.5, 1000) == (937, 1000)
    assert run_length(60000, 64, 1e-9, None) == (937, 1)  # at least one step
    assert run_length(60000, 60000, MAX_STEPS, None) == (1, MAX_STEPS)
    assert run_length(60000, 64, sys.float_info.max, 5) == (937, 5)  # --max_steps caps it
    with pytest.raises(ConfigError, match=r"^--epochs: 1e\+30 epochs of 937 steps .* at most"):
        run_length(60000, 64, 1e30, None)

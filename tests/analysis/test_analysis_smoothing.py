"""Moving averages and maxima, raw and smoothed (analysis.smoothing)."""

from __future__ import annotations

import numpy as np
import pytest

from tfbreak.analysis.smoothing import maxima, moving_average, running_median


def test_running_median_is_the_median_of_each_truncated_window():
    """out[i] = nanmedian(v[max(0, i - w//2) .. i + w//2]), NaN where the window has no finite
    value; checked exactly against that definition, window by window, on series with NaN and
    +-inf, and on a hand-worked case."""
    v = np.array([1.0, 9.0, 2.0, np.nan, np.nan, np.nan, 4.0, -np.inf])
    np.testing.assert_array_equal(
        running_median(v), [5.0, 2.0, 5.5, 2.0, np.nan, 4.0, -np.inf, -np.inf]
    )
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 50):
        for width in (1, 3, 4, 5):
            v = rng.standard_normal(n)
            v[rng.random(n) < 0.3] = np.nan
            v[rng.random(n) < 0.05] = np.inf
            v[rng.random(n) < 0.05] = -np.inf
            half = width // 2
            expected = []
            for i in range(n):
                window = v[max(0, i - half) : i + half + 1]
                expected.append(np.nanmedian(window) if np.isfinite(window).any() else np.nan)
            np.testing.assert_array_equal(running_median(v, width), expected, err_msg=(n, width))


def test_moving_average_trailing_and_centred():
    v = np.array([1.0, 2.0, 6.0, 3.0, np.nan, 5.0])
    np.testing.assert_allclose(moving_average(v, 3), [1.0, 1.5, 3.0, 11 / 3, 4.5, 4.0])
    np.testing.assert_allclose(moving_average(v, 3, "centred"), [1.5, 3.0, 11 / 3, 4.5, 4.0, 5.0])
    np.testing.assert_array_equal(moving_average(v, 1), v)
    assert np.isnan(moving_average(np.array([np.nan, np.nan]), 2)).all()
    with pytest.raises(ValueError):
        moving_average(v, 0)


def test_maxima_raw_and_smoothed():
    steps = np.arange(6) * 10
    epochs = steps / 100
    v = np.array([1.0, 2.0, 6.0, 3.0, np.nan, 5.0])
    m = maxima(steps, epochs, v, window=3)
    assert (m.raw.value, m.raw.step, m.raw.epoch) == (6.0, 20, 0.2)
    assert m.smoothed.value == pytest.approx(4.5) and m.smoothed.step == 40
    assert maxima(steps, epochs, v).smoothed is None
    assert maxima(steps, epochs, np.full(6, np.nan)).raw is None

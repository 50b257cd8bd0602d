"""Derived series and paper notation (analysis.series)."""

from __future__ import annotations

import math

import numpy as np

from tfbreak.analysis.series import get_series
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import write_synthetic_run


def test_ratio_derived_from_lambda_star(tmp_path):
    d = write_synthetic_run(
        tmp_path / "r",
        steps=[0, 10],
        measurements={names.K_LAMBDA_1: [2.0, 4.0], names.K_LAMBDA_STAR: [0.5, 2.0]},
    )
    _, _, v = get_series(load_run(d), names.K_RATIO)
    np.testing.assert_allclose(v, [0.25, 0.5])
    assert not math.isnan(v[0])

"""The UMAP trajectory view (analysis.umap_trajectory, Figs. 1 and 8): skipped with too few
points, nearest-neighbour backgrounds."""

from __future__ import annotations

import numpy as np
import pytest

from tfbreak.analysis import umap_trajectory
from tfbreak.analysis.sweep import make_sweep
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import write_synthetic_run


def test_umap_skipped_with_few_points(tmp_path):
    preds = {s: {"test_predictions": np.eye(3, dtype=np.float32) * (s + 1)} for s in (0, 10)}
    d = write_synthetic_run(
        tmp_path / "r", steps=[0, 10], measurements={names.K_LAMBDA_1: [1, 2]}, arrays=preds
    )
    written, msgs = umap_trajectory.plot_umap(
        make_sweep([load_run(d)]), {"fig1": tmp_path / "f1.png", "fig8": tmp_path / "f8.png"}
    )
    assert written == {} and any("only 2 points" in m for m in msgs)


def test_background_interpolation():
    """Each cell: the 1/d²-weighted mean of the nearest points' values (NaN points ignored), a
    cell on a point takes its value; with log=True the weighting is of the logs."""
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    vals = np.array([1.0, 2.0, 3.0, np.nan])
    img, extent = umap_trajectory.background(pts, vals, grid=3, pad=0, neighbours=3)
    assert extent == (0.0, 1.0, 0.0, 1.0)
    assert img[0, 0] == pytest.approx(1.0) and img[0, -1] == pytest.approx(2.0)
    assert img[-1, 0] == pytest.approx(3.0)
    # The centre (0.5, 0.5) is at distance sqrt(0.5) from the three finite points: their mean.
    assert img[1, 1] == pytest.approx(2.0)
    # (1, 1): distance 1 from (1, 0) and (0, 1), sqrt(2) from (0, 0): weights 1, 1, 1/2.
    assert img[-1, -1] == pytest.approx((2.0 + 3.0 + 0.5 * 1.0) / 2.5)
    logs, _ = umap_trajectory.background(pts, vals, grid=3, pad=0, neighbours=3, log=True)
    assert logs[1, 1] == pytest.approx(6.0 ** (1 / 3))  # geometric mean
    np.testing.assert_array_equal(
        umap_trajectory.values_at_steps(
            np.array([0, 100]), np.array([1.0, 5.0]), np.array([40, 60])
        ),
        [1.0, 5.0],
    )

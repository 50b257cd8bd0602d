"""The UMAP trajectory view (analysis.umap_trajectory, Figs. 1 and 8): skipped with too few
points, nearest-neighbour backgrounds."""

from __future__ import annotations

import numpy as np

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


def test_nearest_background_interpolation():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    img, extent = umap_trajectory.nearest_background(pts, np.array([1.0, 2.0, 3.0, np.nan]), 4, 0)
    assert extent == (0.0, 1.0, 0.0, 1.0)
    assert img[0, 0] == 1.0 and img[0, -1] == 2.0 and img[-1, 0] == 3.0
    assert img[-1, -1] in (2.0, 3.0)  # NaN point ignored: nearest finite neighbour
    np.testing.assert_array_equal(
        umap_trajectory.values_at_steps(
            np.array([0, 100]), np.array([1.0, 5.0]), np.array([40, 60])
        ),
        [1.0, 5.0],
    )

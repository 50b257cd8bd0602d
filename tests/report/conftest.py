"""Fixtures shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfbreak import report
from tfbreak.runs.synthetic import write_synthetic_sweep


@pytest.fixture(scope="session")
def synthetic_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report directory of a synthetic two-run η sweep consistent with both conjectures
    (`write_synthetic_sweep`), smoothed over 3 measurements, thresholds 0.6 and 0.75, no UMAP.
    Written once per session: tests only read it."""
    root = tmp_path_factory.mktemp("synthetic_report")
    write_synthetic_sweep(root / "sweep", lrs=(0.1, 0.01))
    out = root / "out"
    args = ["--out", str(out), "--no-umap", "--smoothing", "3", "--thresholds", "0.6,0.75"]
    assert report.main([str(root / "sweep"), *args]) == 0
    return out

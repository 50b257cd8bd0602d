"""The conjecture CSV files (report.tables) on a synthetic two-run sweep."""

from __future__ import annotations

import csv
import io

import numpy as np

from tfbreak.analysis.summary import summarize_sweep
from tfbreak.analysis.sweep import make_sweep
from tfbreak.analysis.verdicts import check_conjectures
from tfbreak.report import tables
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import write_synthetic_run


def _sweep(root):
    shape = np.array([0.5, 0.8, 1.0, 0.7])
    runs = [
        write_synthetic_run(
            root / f"lr{lr:g}",
            steps=[0, 10, 20, 30],
            measurements={m: list(shape / lr) for m in (names.K_LAMBDA_1, names.K_TRACE)},
            lr=lr,
            sweep={"axis": "lr", "value": lr},
        )
        for lr in (0.1, 0.01)
    ]
    return make_sweep([load_run(d) for d in runs])


def test_conjectures_csv_smoothed_columns_only_with_a_window(tmp_path):
    sweep = _sweep(tmp_path)
    header = tables.conjectures_csv(summarize_sweep(sweep, 2), 2).splitlines()[0].split(",")
    assert "max_K/lambda_1_smoothed" in header
    assert header.index("robust_max_K/lambda_1") == header.index("max_K/lambda_1_epoch") + 1
    assert header.index("max_K/lambda_1_smoothed") == header.index("robust_max_K/lambda_1_step") + 1
    raw = tables.conjectures_csv(summarize_sweep(sweep)).splitlines()[0]
    assert "smoothed" not in raw


def test_windows_csv_maxima_then_verdicts(tmp_path):
    sweep = _sweep(tmp_path)
    summaries = summarize_sweep(sweep, 2, replicates=20)
    verdicts = check_conjectures(summaries, sweep, 2)
    text = tables.conjectures_windows_csv(summaries, verdicts)
    assert text.splitlines()[0] == ",".join(tables.WINDOWS_CSV_FIELDS)
    rows = list(csv.DictReader(io.StringIO(text)))
    # 2 runs x 4 metrics x 3 windows x raw/smoothed; per conjecture 6 window verdicts, then
    # 2 checks x 6 windows.
    per_conjecture = ["conjecture"] * 6 + ["check"] * 12
    assert [r["record"] for r in rows] == ["maximum"] * 48 + per_conjecture * 2
    m = next(r for r in rows if r["metric"] == names.K_LAMBDA_1 and r["window"] == "whole")
    assert (m["run"], m["smoothed"], float(m["value"]), m["step"]) == (
        "lr=0.01",
        "False",
        100.0,
        "20",
    )
    assert m["status"] == m["confidence"] == m["conjecture"] == ""
    missing = next(r for r in rows if r["metric"] == names.HESSIAN_LAMBDA_1)
    assert missing["value"] == missing["step"] == ""  # never measured: an empty maximum
    check = next(r for r in rows if r["record"] == "check" and r["metric"] == names.K_LAMBDA_1)
    assert (check["conjecture"], check["window"], check["status"]) == ("1", "whole", "holds")
    assert float(check["confidence"]) == 1.0 and check["run"] == check["seed_share"] == ""


def test_hessian_sample_cell_fixed_and_adaptive(tmp_path):
    """The runs table names the Hessian sample: the fixed size, or the sizes an adaptive
    sample ended with and its target."""

    def cell(name, measurements, **metadata):
        steps = [10 * i for i in range(len(next(iter(measurements.values()))))]
        run = write_synthetic_run(
            tmp_path / name, steps=steps, measurements=measurements, **metadata
        )
        return tables.hessian_sample_cell(load_run(run))

    assert cell("fixed", {names.K_LAMBDA_1: [1.0, 2.0]}, hessian_sample_size=3000) == "3000"
    adaptive = {names.HESSIAN_SAMPLE_SIZE: [600, 1200, 600]}
    target = {"hessian_target_error": 0.05}
    assert (
        cell("adaptive", adaptive, hessian_sample_size=600, config=target)
        == "600–1200 (adaptive, target 0.05)"
    )
    steady = {names.HESSIAN_SAMPLE_SIZE: [600, 600]}
    assert cell("steady", steady, hessian_sample_size=600) == "600 (adaptive)"

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
    summaries = summarize_sweep(sweep, 2, replicates=20)
    text = tables.conjectures_csv(summaries, check_conjectures(summaries, sweep, 2), 2)
    header = text.splitlines()[0].split(",")
    assert "max_K/lambda_1_smoothed" in header
    assert header.index("robust_max_K/lambda_1") == header.index("max_K/lambda_1_epoch") + 1
    assert header.index("max_K/lambda_1_smoothed") == header.index("robust_max_K/lambda_1_step") + 1
    raw = summarize_sweep(sweep, replicates=20)
    header = tables.conjectures_csv(raw, check_conjectures(raw, sweep)).splitlines()[0]
    assert "smoothed" not in header


def test_conjectures_csv_holds_the_second_half_and_the_verdicts_beside_it(tmp_path):
    """Per run the second half's maximum and median (with its interval), and beside each metric
    its check's verdicts (the same on every row) with their confidence."""
    sweep = _sweep(tmp_path)
    summaries = summarize_sweep(sweep, replicates=20)
    rows = list(
        csv.DictReader(
            io.StringIO(tables.conjectures_csv(summaries, check_conjectures(summaries, sweep)))
        )
    )
    # Runs of 4 measurements at steps 0-30 (shape 0.5, 0.8, 1, 0.7 / η): the second half is
    # steps >= 15, i.e. steps 20 and 30.
    first = rows[0]
    assert first["run"] == "lr=0.01" and float(first["late_max_K/lambda_1"]) == 100.0
    assert float(first["late_median_K/lambda_1"]) == 85.0 and first["late_n_K/lambda_1"] == "2"
    for r in rows:
        assert r["verdict_late_median_K/lambda_1"] == "holds"
        assert float(r["confidence_late_median_K/lambda_1"]) == 1.0
        assert r["verdict_whole_max_K/trace"] == "holds"
    assert rows[0]["late_median_hessian/lambda_1"] == ""  # never measured


def test_windows_csv_maxima_then_verdicts(tmp_path):
    sweep = _sweep(tmp_path)
    summaries = summarize_sweep(sweep, 2, replicates=20)
    verdicts = check_conjectures(summaries, sweep, 2)
    text = tables.conjectures_windows_csv(summaries, verdicts)
    assert text.splitlines()[0] == ",".join(tables.WINDOWS_CSV_FIELDS)
    rows = list(csv.DictReader(io.StringIO(text)))
    # 2 runs x 4 metrics x (4 windows x max/smoothed max + the second half's median); per
    # conjecture 9 window verdicts, then 2 checks x 9.
    per_conjecture = ["conjecture"] * 9 + ["check"] * 18
    assert [r["record"] for r in rows] == ["statistic"] * 72 + per_conjecture * 2
    m = next(r for r in rows if r["metric"] == names.K_LAMBDA_1 and r["window"] == "whole")
    assert (m["run"], m["statistic"], float(m["value"]), m["step"], m["n"]) == (
        "lr=0.01",
        "max",
        100.0,
        "20",
        "3",
    )
    med = next(r for r in rows if r["metric"] == names.K_LAMBDA_1 and r["statistic"] == "median")
    assert (med["window"], float(med["value"]), med["step"], med["late_start"]) == (
        "late",
        85.0,
        "",
        "15.0",
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

"""The report CLI on synthetic sweeps: files, figures (non-empty, not blank), messages."""

from __future__ import annotations

import csv
import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest

from tfbreak import report
from tfbreak.analysis import figures, umap_trajectory
from tfbreak.analysis.breakeven import detect_break_even
from tfbreak.analysis.sweep import make_sweep
from tfbreak.analysis.thresholds import accuracy_crossings
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import write_synthetic_run, write_synthetic_sweep


def _assert_image(path):
    assert path.is_file() and path.stat().st_size > 0
    img = mpimg.imread(path)
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 1


def test_report_on_synthetic_sweep(tmp_path):
    write_synthetic_sweep(tmp_path / "sweep", lrs=(0.1, 0.01))
    out = tmp_path / "out"
    assert (
        report.main(
            [
                str(tmp_path / "sweep"),
                "--out",
                str(out),
                "--no-umap",
                "--smoothing",
                "3",
                "--thresholds",
                "0.6,0.75",
            ]
        )
        == 0
    )
    for name in (
        "fig4_K",
        "fig5_hessian",
        "fig2_scatter",
        "fig3_spectra",
        "trace_K",
        "accuracy",
        "breakeven_eq1",
    ):
        _assert_image(out / f"{name}.png")
    assert not (out / "fig7_bn.png").exists() and not (out / "fig9_M.png").exists()
    md = (out / "report.md").read_text()
    assert "**Conjecture 1 (variance reduction): holds**" in md
    assert "**Conjecture 2 (pre-conditioning): holds**" in md
    assert "max λ1_K: lr=0.1 → 0.3 < lr=0.01 → 3: holds" in md
    assert "Fig. 7: skipped" in md and "UMAP (Figs. 1, 8): disabled" in md
    assert "![" in md and "fig4_K.png" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 7
    rows = list(csv.DictReader((out / "conjectures.csv").open()))
    assert [r["run"] for r in rows] == ["lr=0.01", "lr=0.1"]
    assert float(rows[0]["max_K/lambda_1"]) == pytest.approx(3.0)


def test_break_even_and_threshold_lines_positions(tmp_path):
    (d,) = write_synthetic_sweep(tmp_path / "s", lrs=(0.1,), with_predictions=False)
    run = load_run(d)
    point, series, _ = detect_break_even(run)
    # λ1_H rises linearly 0.1 -> 22 over 10 measurements; η λ1_H = 0.1 λ1_H, s² = 2 λ1_H,
    # N = 1000, S = 32: recompute by hand the first step with LHS >= 1.
    _, _, lam = run.series(names.HESSIAN_LAMBDA_1)
    lhs = (1 - 0.1 * lam) ** 2 + 2 * lam * 0.01 * (1000 - 32) / (32 * 999)
    first = int(np.flatnonzero(lhs >= 1)[0])
    assert series.source == "recomputed" and point.step == first * 10
    np.testing.assert_allclose(series.values, lhs, rtol=1e-12)
    cr = accuracy_crossings(run, [0.6])
    acc_steps, acc_epochs, acc = run.series(names.TRAIN_ACCURACY_EPOCH)
    k = int(np.flatnonzero(acc > 0.6)[0])
    assert cr[0.6].epoch == acc_epochs[k]
    # The figure draws exactly those vertical lines.
    sweep = make_sweep([run])
    ctx = figures.FigureContext(sweep, crossings={0: cr}, breakeven={0: point}, eq1={0: series})
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    figures.plot_metric_vs_epoch(ax, ctx, names.K_LAMBDA_1)
    xdata = [np.asarray(line.get_xdata(), dtype=float) for line in ax.get_lines()]
    xs = sorted(x[0] for x in xdata if x.size == 2 and x[0] == x[1])  # the axvlines
    plt.close(fig)
    assert xs == sorted([cr[0.6].epoch, point.epoch])


def test_single_diverged_run_and_bn_and_fig9(tmp_path):
    steps = [0, 10, 20, 30]
    for m in (1, 128):
        write_synthetic_run(
            tmp_path / "sweep" / f"m{m}",
            steps=steps,
            measurements={
                names.K_LAMBDA_1: [1.0 * m, 2.0 * m, 3.5 * m, 3.0 * m],
                names.BN_GAMMA_NORM: [5.0, 4.0, 3.0, 2.5],
                names.GRAD_NORM_OVER_TOP5: [1.2, 1.5, 1.9, 2.0],
            },
            K_M=m,
        )
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out), "--no-umap"]) == 0
    _assert_image(out / "fig7_bn.png")
    _assert_image(out / "fig9_M.png")
    md = (out / "report.md").read_text()
    assert "the runs do not differ in η or S" in md

    d = write_synthetic_run(
        tmp_path / "lonely",
        steps=steps,
        measurements={names.K_LAMBDA_1: [1.0, 2.0, float("nan"), None]},
        status="diverged",
        stop_reason="loss is NaN at step 20",
    )
    assert report.main([str(d), "--no-umap", "--no-html"]) == 0
    md = (d / "figures" / "report.md").read_text()
    assert "lonely diverged: loss is NaN at step 20" in md
    assert "single run" in md and ": holds" not in md
    assert "| lonely | unavailable | — | — | — | — | — |" in md  # no accuracy measured
    assert not (d / "figures" / "report.html").exists()


def test_cli_errors_on_non_run(tmp_path):
    (tmp_path / "x").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "tfbreak.report", str(tmp_path / "x"), "--no-umap"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "neither a run directory" in proc.stderr


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


@pytest.mark.slow
def test_report_with_umap(tmp_path):
    write_synthetic_sweep(tmp_path / "sweep", lrs=(0.1, 0.01))
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    _assert_image(out / "fig1_umap.png")
    _assert_image(out / "fig8_umap.png")


def test_report_noise_aware_windows_and_error_bands(tmp_path, monkeypatch):
    """Synthetic noisy sweep (2 lrs x 2 seeds) with stderr series and a known break-even step."""
    import os
    from pathlib import Path

    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from test_noise_verdicts import write_noisy_run

    rng = np.random.default_rng(0)
    for lr in (0.1, 0.01):
        for s in (0, 1):
            write_noisy_run(tmp_path / "sweep" / f"lr{lr:g}_s{s}", lr, rng, seed=s)
    out = tmp_path / "out"
    args = [str(tmp_path / "sweep"), "--out", str(out), "--no-umap", "--bootstrap", "300"]
    assert report.main(args) == 0
    md = (out / "report.md").read_text()
    assert "| conjecture | check | maxima | paper (literal) | whole trajectory |" in md
    assert "| 2 (pre-conditioning) | all checks | raw | violated | violated (0.00) |" in md
    assert "after break-even holds (1.00)" in md
    assert "every run attains its whole-trajectory maximum before its break-even point" in md
    assert "lr=0.1 (seed 0)" in md and "lr=0.1 (seed 1)" in md
    rows = list(csv.DictReader((out / "conjectures_windows.csv").open()))
    after = [
        r
        for r in rows
        if r["record"] == "check" and r["metric"] == names.K_RATIO and r["window"] == "after"
    ]
    assert after[0]["status"] == "holds" and float(after[0]["seed_share"]) == 1.0
    # Error bands: value ± stderr drawn as a filled polygon per run.
    import matplotlib.pyplot as plt

    runs = [load_run(d) for d in sorted((tmp_path / "sweep").iterdir())]
    fig, ax = plt.subplots()
    figures.plot_metric_vs_epoch(ax, figures.FigureContext(make_sweep(runs)), names.K_LAMBDA_1)
    assert len(ax.collections) == 4
    plt.close(fig)

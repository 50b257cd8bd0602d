"""Figures drawn from synthetic runs: vertical lines at threshold crossings and the break-even
point (Fig. 4), error bands from standard-error series (analysis.figures)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from tfbreak.analysis import figures, spectra_figure
from tfbreak.analysis.breakeven import detect_break_even
from tfbreak.analysis.sweep import make_sweep
from tfbreak.analysis.thresholds import accuracy_crossings
from tfbreak.runs import load_run, names
from tfbreak.runs.synthetic import write_synthetic_run, write_synthetic_sweep


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
    fig, ax = plt.subplots()
    figures.plot_metric_vs_step(ax, ctx, names.K_LAMBDA_1)
    xdata = [np.asarray(line.get_xdata(), dtype=float) for line in ax.get_lines()]
    xs = sorted(x[0] for x in xdata if x.size == 2 and x[0] == x[1])  # the axvlines
    plt.close(fig)
    assert xs == sorted([cr[0.6].step, point.step])


def test_error_bands_for_runs_with_standard_errors(tmp_path):
    """value ± stderr is drawn as one filled band per run that has a standard-error series."""
    runs = []
    for i, lr in enumerate((0.1, 0.03, 0.01, 0.003, 0.001)):
        meas = {names.K_LAMBDA_1: [1.0 / lr, 2.0 / lr, 1.5 / lr]}
        if i < 4:  # the last run has no standard errors: no band
            meas[names.K_LAMBDA_1_STDERR] = [0.1 / lr, 0.2 / lr, 0.1 / lr]
        runs.append(
            load_run(
                write_synthetic_run(tmp_path / f"r{i}", steps=[0, 10, 20], measurements=meas, lr=lr)
            )
        )
    fig, ax = plt.subplots()
    figures.plot_metric_vs_step(ax, figures.FigureContext(make_sweep(runs)), names.K_LAMBDA_1)
    assert len(ax.collections) == 4
    plt.close(fig)


def test_fig3_marks_the_ritz_values_of_h_that_are_not_certified():
    """Lanczos converges lambda_1 only by default: Ritz values whose certified bound exceeds 10%
    of them, and those after them, are drawn hollow (lower bounds of their eigenvalues, by
    interlacing), theta_1 always filled; old runs without bounds fill every positive value."""
    ritz = np.array([95.0, 54.0, 31.0, 14.7, -0.07])
    cases = [
        (np.array([1e-3, 1.0, 2.0, 10.0, 50.0]), 3),
        (np.array([20.0, 1.0, 1.0, 1.0, 1.0]), 1),
        (None, 4),
    ]
    for bounds, filled in cases:
        arr = {names.ARRAY_HESSIAN_RITZ_VALUES: ritz}
        if bounds is not None:
            arr[names.ARRAY_HESSIAN_RITZ_BOUNDS] = bounds
        fig, ax = plt.subplots()
        hollow = spectra_figure.draw_spectrum(ax, names.ARRAY_HESSIAN_RITZ_VALUES, arr, "C0", "run")
        lines = ax.get_lines()
        np.testing.assert_array_equal(lines[0].get_ydata(), ritz[:filled])
        np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(1, filled + 1))
        assert hollow == (filled < 4)
        if hollow:
            np.testing.assert_array_equal(lines[-1].get_ydata(), ritz[filled:4])
            assert lines[-1].get_markerfacecolor() == "none"
        plt.close(fig)


def test_fig3_marks_the_certified_eigenvalues_on_the_density_and_says_when_it_misses_one(tmp_path):
    """The SLQ density with the certified top Ritz values of H at that step (dashed); a certified
    λ1 where the density is below 1e-9 of its peak (one SLQ vector gives an outlier a weight of
    order 1/n) is marked "not resolved" and named in the figure's message."""
    grid = np.linspace(-5.0, 100.0, 500)
    density = np.exp(-(grid**2)) + 1e-6 * np.exp(-((grid - 50.0) ** 2))
    arrays = {
        20: {
            names.ARRAY_HESSIAN_DENSITY_GRID: grid,
            names.ARRAY_HESSIAN_DENSITY: density,
            names.ARRAY_HESSIAN_RITZ_VALUES: np.array([94.0, 50.0, 30.0]),
            names.ARRAY_HESSIAN_RITZ_BOUNDS: np.array([1e-3, 1.0, 10.0]),  # 30 not certified
        }
    }
    d = write_synthetic_run(
        tmp_path / "r",
        steps=[0, 10, 20],
        measurements={names.HESSIAN_LAMBDA_1: [5.0, 50.0, 94.0]},
        arrays=arrays,
        config={"density_vectors": 1},
    )
    run = load_run(d)
    np.testing.assert_array_equal(spectra_figure.certified_ritz(arrays[20]), [94.0, 50.0])
    np.testing.assert_array_equal(
        spectra_figure.unresolved(grid, density, np.array([94.0, 50.0])), [94.0]
    )
    fig, ax = plt.subplots()
    spectra_figure.draw_spectrum(ax, names.ARRAY_HESSIAN_DENSITY, arrays[20], "C0", "run")
    marks = sorted(line.get_xdata()[0] for line in ax.get_lines()[1:])
    assert marks == [50.0, 94.0] and [t.get_text() for t in ax.texts] == ["not resolved "]
    plt.close(fig)
    path, msg = spectra_figure.fig3_spectra(
        figures.FigureContext(make_sweep([run])), tmp_path / "f3.png"
    )
    assert path is not None and "certified eigenvalue(s) 94 of H" in msg
    assert "1 SLQ vector(s)" in msg


def test_step_axis_labels_powers_of_ten_not_zero(tmp_path):
    """The symlog step axis keeps step 0 at its left edge without a "0" label beside "1"."""
    d = write_synthetic_run(
        tmp_path / "r", steps=[0, 1, 10, 300], measurements={names.K_LAMBDA_1: [1, 2, 3, 2]}
    )
    fig, ax = plt.subplots()
    figures.plot_metric_vs_step(
        ax, figures.FigureContext(make_sweep([load_run(d)])), names.K_LAMBDA_1
    )
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    assert labels == ["1", "10", "100"] and ax.get_xlim()[0] == 0
    assert ax.get_ylabel() == r"$\lambda_1^K$"
    plt.close(fig)

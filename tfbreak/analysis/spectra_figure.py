"""Fig. 3 of the paper: the spectra of K and H at the step where each run's lambda_1 peaks
(after step 0), from the arrays saved at measurements (`tfbreak.runs.names`): K's L eigenvalues
by rank; H's SLQ spectral density where every run saved one, else its top Ritz values by rank,
filled where certified to 10% and hollow (lower bounds, by interlacing) after that.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from tfbreak.analysis.figures import FigureContext, FigureResult, log_scale, save_figure
from tfbreak.analysis.series import display, get_series
from tfbreak.runs import Run, names


def _nearest_array_step(run: Run, step: int, key: str) -> int | None:
    steps = run.array_steps(key)
    if not steps:
        return None
    return min(steps, key=lambda s: (abs(s - step), s))


NUMERICAL_ZERO = 1e-10
DENSITY_FLOOR = 1e-9  # Fig. 3 draws the SLQ density down to 1e-9 of its peak
RITZ_SHOWN = 0.1  # Fig. 3 shows Ritz values of H certified to 10% (bound <= 0.1 theta)
SPECTRUM_KEYS = {
    "K": (names.K_LAMBDA_1, (names.ARRAY_K_EIGENVALUES,)),
    "H": (names.HESSIAN_LAMBDA_1, (names.ARRAY_HESSIAN_DENSITY, names.ARRAY_HESSIAN_RITZ_VALUES)),
}


def _spectrum_at_maximum(ctx: FigureContext, i: int, panel: str, key: str):
    """(arrays, step, note) of run i's saved `key` nearest to its maximum of the panel's
    metric (after step 0, as in the verdicts), or None."""
    metric, _ = SPECTRUM_KEYS[panel]
    steps, _, values = get_series(ctx.runs[i], metric)
    keep = steps > 0
    if not np.isfinite(values[keep]).any():
        return None
    target = int(steps[keep][int(np.nanargmax(values[keep]))])
    s = _nearest_array_step(ctx.runs[i], target, key)
    if s is None:
        return None
    arr = ctx.runs[i].arrays(s)
    if key == names.ARRAY_HESSIAN_DENSITY and names.ARRAY_HESSIAN_DENSITY_GRID not in arr:
        return None
    note = None
    if s != target:
        note = (
            f"Fig. 3: {ctx.label(i)}: max {display(metric)} at step {target}, nearest saved "
            f"{key} at step {s}"
        )
    return arr, s, note


def draw_spectrum(ax: plt.Axes, key: str, arr: dict, color, label: str) -> bool:
    """The SLQ density against the eigenvalue, or the eigenvalues against their rank; True
    when some (hollow) Ritz values are not converged."""
    if key == names.ARRAY_HESSIAN_DENSITY:
        grid, density = arr[names.ARRAY_HESSIAN_DENSITY_GRID], arr[names.ARRAY_HESSIAN_DENSITY]
        # below 1e-9 of the peak there are only the Gaussian tails of the quadrature nodes
        density = np.where(density >= DENSITY_FLOOR * np.max(density), density, np.nan)
        ax.plot(grid, density, color=color, label=label)
        ax.set_yscale("log")  # many decades: labels at powers of ten
        ax.set(xlabel="eigenvalue", ylabel="spectral density (SLQ)")
        return False
    v = np.sort(np.asarray(arr[key], dtype=np.float64).ravel())[::-1]
    v = v[v > NUMERICAL_ZERO * v[0]]  # K's L-th eigenvalue is 0 up to rounding
    shown = v.size
    if key == names.ARRAY_HESSIAN_RITZ_VALUES and names.ARRAY_HESSIAN_RITZ_BOUNDS in arr:
        bounds = np.asarray(arr[names.ARRAY_HESSIAN_RITZ_BOUNDS], dtype=np.float64)[: v.size]
        certified = bounds <= RITZ_SHOWN * v
        shown = max(1, int(np.argmin(certified)) if not certified.all() else v.size)
    ranks = np.arange(1, v.size + 1)
    ax.plot(ranks[:shown], v[:shown], "o-", color=color, ms=3, lw=1.2, label=label)
    if shown < v.size:  # theta_j <= lambda_j (interlacing): lower bounds, not converged
        ax.plot(ranks[shown - 1 :], v[shown - 1 :], ":", color=color, lw=1)
        ax.plot(ranks[shown:], v[shown:], "o", mfc="none", color=color, ms=4)
    log_scale(ax, "y")
    ax.set(xlabel="rank", ylabel="eigenvalue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return shown < v.size


def fig3_spectra(ctx: FigureContext, path: Path) -> FigureResult:
    """Fig. 3 analogue: the spectrum of K at the step of max λ1_K, and of H at the step of max
    λ1_H (maxima after step 0; the saved arrays nearest to them, steps in the legend).

    K: the L eigenvalues of K_M by rank (log scale; the zero one left out). H: the SLQ spectral
    density where every run saved one (``--measurements`` with ``density``), else the top
    Ritz values by rank: filled where certified to 10% (`hessian_ritz_bounds`), hollow after
    that (by default Lanczos converges lambda_1 only; a Ritz value is a lower bound of its
    eigenvalue).
    """
    notes: list[str] = []
    panels: dict[str, list] = {}
    for panel, (_, keys) in SPECTRUM_KEYS.items():
        for key in keys:
            found = [(i, _spectrum_at_maximum(ctx, i, panel, key)) for i in range(len(ctx.runs))]
            found = [(i, f) for i, f in found if f is not None]
            if found and (key != names.ARRAY_HESSIAN_DENSITY or len(found) == len(ctx.runs)):
                panels[panel] = [(i, key, *f) for i, f in found]
                break
    if not panels:
        return None, "Fig. 3: skipped, no K_eigenvalues / hessian_ritz_values / hessian_density"
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (panel, entries) in zip(axes[0], panels.items(), strict=True):
        hollow = False
        for i, key, arr, step, note in entries:
            label = f"{ctx.label(i)} (step {step})"
            hollow = draw_spectrum(ax, key, arr, ctx.color(i), label) or hollow
            notes += [note] if note else []
        what = "K" if panel == "K" else "H"
        ax.set_title(f"spectrum of {what} at max λ1_{what}")
        if hollow:
            ax.plot([], [], "o", mfc="none", color="gray", label="not converged: lower bound")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("Fig. 3: spectra at the maximum", fontsize=10)
    return save_figure(fig, path), ("\n".join(notes) if notes else None)

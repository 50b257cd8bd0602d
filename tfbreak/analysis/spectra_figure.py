"""Fig. 3 of the paper: the spectra of K and H at the step where each run's lambda_1 peaks
(after step 0), from the arrays saved at measurements (`tfbreak.runs.names`): K's L eigenvalues
by rank; H's SLQ spectral density where every run saved one, with the top Ritz values certified to
10% at that step marked on it (dashed), else its top Ritz values by rank, filled where certified
and hollow (lower bounds, by interlacing) after that.

An SLQ density from few vectors gives an isolated outlier eigenvalue (λ1_H, typically) a weight
of order 1/n (n parameters) per vector, far below the bulk: the density then ends before the
certified λ1_H. The figure marks such eigenvalues ("not resolved") and says so.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from tfbreak.analysis.figures import (
    FigureContext,
    FigureResult,
    literal_legend,
    log_scale,
    panel_row,
    save_figure,
)
from tfbreak.analysis.series import display, get_series, math_display
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


def certified_ritz(arr: dict) -> np.ndarray:
    """The top Ritz values of H saved with `arr` that are certified to `RITZ_SHOWN` (bound <=
    0.1 theta), in descending order: empty without Ritz values and bounds."""
    if names.ARRAY_HESSIAN_RITZ_VALUES not in arr or names.ARRAY_HESSIAN_RITZ_BOUNDS not in arr:
        return np.zeros(0)
    theta = np.asarray(arr[names.ARRAY_HESSIAN_RITZ_VALUES], dtype=np.float64).ravel()
    bounds = np.asarray(arr[names.ARRAY_HESSIAN_RITZ_BOUNDS], dtype=np.float64).ravel()
    if theta.size != bounds.size:
        return np.zeros(0)
    order = np.argsort(theta)[::-1]
    theta, bounds = theta[order], bounds[order]
    ok = (theta > 0) & (np.abs(bounds) <= RITZ_SHOWN * theta)
    return theta[: theta.size if ok.all() else int(np.argmin(ok))]


def unresolved(grid: np.ndarray, density: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    """The eigenvalues where the density is below `DENSITY_FLOOR` of its peak (or off its grid):
    those its vectors cannot resolve."""
    floor = DENSITY_FLOOR * np.max(density)
    inside = (eigenvalues >= grid.min()) & (eigenvalues <= grid.max())
    at = np.interp(eigenvalues, grid, density)
    return eigenvalues[~inside | (at < floor)]


def draw_spectrum(ax: plt.Axes, key: str, arr: dict, color, label: str) -> bool:
    """The SLQ density against the eigenvalue (the certified top Ritz values marked), or the
    eigenvalues against their rank; True when some (hollow) Ritz values are not converged."""
    if key == names.ARRAY_HESSIAN_DENSITY:
        grid, density = arr[names.ARRAY_HESSIAN_DENSITY_GRID], arr[names.ARRAY_HESSIAN_DENSITY]
        # below 1e-9 of the peak there are only the Gaussian tails of the quadrature nodes
        shown = np.where(density >= DENSITY_FLOOR * np.max(density), density, np.nan)
        ax.plot(grid, shown, color=color, label=label)
        certified = certified_ritz(arr)
        lost = set(unresolved(grid, density, certified).tolist())
        for theta in certified:
            ax.axvline(theta, color=color, ls="--", lw=1)
            if theta in lost:
                ax.text(
                    theta,
                    0.98,
                    "not resolved ",
                    color=color,
                    rotation=90,
                    va="top",
                    ha="right",
                    fontsize=7,
                    transform=ax.get_xaxis_transform(),
                )
        ax.set_yscale("log")  # many decades: labels at powers of ten
        ax.set(xlabel="eigenvalue", ylabel="spectral density (SLQ)")
        return False
    v = np.sort(np.asarray(arr[key], dtype=np.float64).ravel())[::-1]
    v = v[v > NUMERICAL_ZERO * v[0]]  # K's L-th eigenvalue is 0 up to rounding
    shown_n = v.size
    if key == names.ARRAY_HESSIAN_RITZ_VALUES and names.ARRAY_HESSIAN_RITZ_BOUNDS in arr:
        shown_n = max(1, certified_ritz(arr).size)
    ranks = np.arange(1, v.size + 1)
    ax.plot(ranks[:shown_n], v[:shown_n], "o-", color=color, ms=3, lw=1.2, label=label)
    if shown_n < v.size:  # theta_j <= lambda_j (interlacing): lower bounds, not converged
        ax.plot(ranks[shown_n - 1 :], v[shown_n - 1 :], ":", color=color, lw=1)
        ax.plot(ranks[shown_n:], v[shown_n:], "o", mfc="none", color=color, ms=4)
    log_scale(ax, "y")
    ax.set(xlabel="rank", ylabel="eigenvalue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return shown_n < v.size


def resolution_note(ctx: FigureContext, i: int, arr: dict) -> str | None:
    """Fig. 3's message when run i's density cannot resolve a certified eigenvalue of H."""
    grid, density = arr[names.ARRAY_HESSIAN_DENSITY_GRID], arr[names.ARRAY_HESSIAN_DENSITY]
    lost = unresolved(grid, density, certified_ritz(arr))
    if not lost.size:
        return None
    config = ctx.runs[i].metadata.get("config")
    n = config.get("density_vectors") if isinstance(config, dict) else None
    vectors = f"{n} SLQ vector(s)" if isinstance(n, int) and not isinstance(n, bool) else "SLQ"
    values = ", ".join(f"{x:.4g}" for x in lost)
    return (
        f"Fig. 3: {ctx.label(i)}: the density from {vectors} gives the certified "
        f"eigenvalue(s) {values} of H (dashed) a weight below {DENSITY_FLOOR:g} of its peak: "
        "too few vectors to resolve that outlier (more: --density_vectors)"
    )


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
    fig, axes = panel_row(len(panels), 3.8)
    for ax, (panel, entries) in zip(axes, panels.items(), strict=True):
        hollow = False
        density = False
        for i, key, arr, step, note in entries:
            label = f"{ctx.label(i)} (step {step})"
            hollow = draw_spectrum(ax, key, arr, ctx.color(i), label) or hollow
            notes += [note] if note else []
            if key == names.ARRAY_HESSIAN_DENSITY:
                density = True
                notes += [n] if (n := resolution_note(ctx, i, arr)) else []
        metric = SPECTRUM_KEYS[panel][0]
        ax.set_title(f"spectrum of ${panel}$ at max {math_display(metric)}")
        if hollow:
            ax.plot([], [], "o", mfc="none", color="gray", label="not converged: lower bound")
        if density:
            ax.plot([], [], "--", color="gray", lw=1, label="certified top eigenvalues")
        ax.grid(True, alpha=0.3, which="both")
        literal_legend(ax.legend(fontsize=7))
    fig.suptitle("Fig. 3: spectra at the maximum")
    return save_figure(fig, path), ("\n".join(notes) if notes else None)

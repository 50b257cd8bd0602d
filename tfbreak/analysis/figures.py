"""Figures of the paper, drawn from run directories (matplotlib, Agg backend, PNG).

Every figure function takes a `FigureContext` (the sweep, colours, threshold crossings,
break-even points, smoothing) and an output path; it returns the path written, or None and a
message saying why the figure was skipped. Curves are drawn against the SGD step on a log axis
(symlog: step 0 at the left), so the early phase where the break-even point and the peaks of
λ1 lie is as readable as the rest; the paper draws them against the steps. Vertical lines: one per
run and accuracy threshold at the first measurement with training accuracy > threshold (Fig. 4
caption), dashed styles per threshold; a dotted line with a diamond marks the break-even point
(Eq. 1 LHS >= 1).
Where a metric has a standard-error series (`noise.STDERR_OF`), a shaded band shows value ± stderr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tfbreak.extras import require

require("report", "the report", ("matplotlib",))
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    FormatStrFormatter,
    LogLocator,
    NullFormatter,
)

from tfbreak.analysis.breakeven import BreakEvenPoint, Eq1Series  # noqa: E402
from tfbreak.analysis.kbatch import find_m_pairs, pearson_r  # noqa: E402
from tfbreak.analysis.noise import stderr_series  # noqa: E402
from tfbreak.analysis.series import (  # noqa: E402
    LOG_SCALE,
    TRAINING_ACCURACY,
    display,
    get_series,
    has_series,
    math_display,
)
from tfbreak.analysis.smoothing import Mode, moving_average  # noqa: E402
from tfbreak.analysis.sweep import Sweep  # noqa: E402
from tfbreak.analysis.thresholds import Crossing  # noqa: E402
from tfbreak.runs import Run, names  # noqa: E402

THRESHOLD_STYLES = ("--", "-.", (0, (5, 2, 1, 2, 1, 2)), (0, (8, 3)))
BREAKEVEN_STYLE = ":"
DPI = 110
PAGE_WIDTH = 10.9  # inches: the report's 1200-pixel column at DPI, so no figure is shrunk
PANEL_WIDTH = 5.2
EQ1_LHS = r"$(1-\eta\lambda_1^H)^2 + s^2\eta^2\,\frac{N-S}{S(N-1)}$"

FigureResult = tuple[Path | None, str | None]


@dataclass
class FigureContext:
    """What every figure needs besides the metric: runs, colours, vertical lines, smoothing."""

    sweep: Sweep
    crossings: dict[int, dict[float, Crossing | None]] = field(default_factory=dict)
    breakeven: dict[int, BreakEvenPoint | None] = field(default_factory=dict)
    eq1: dict[int, Eq1Series | None] = field(default_factory=dict)
    window: int | None = None
    mode: Mode = "trailing"

    @property
    def runs(self) -> list[Run]:
        return self.sweep.runs

    def color(self, i: int) -> tuple[float, ...]:
        n = max(len(self.runs), 1)
        cmap = plt.get_cmap("tab10" if n <= 10 else "viridis")
        return cmap(i % 10) if n <= 10 else cmap(i / max(n - 1, 1))

    def label(self, i: int) -> str:
        return self.sweep.labels[i]


def figure_width(panels: int) -> float:
    """Inches for `panels` side by side, at most the page's width."""
    return min(PANEL_WIDTH * panels, PAGE_WIDTH)


def panel_row(n: int, height: float) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure of `n` panels side by side at most the page's width (`figure_width`), laid out
    so that titles and labels never overlap."""
    fig, axes = plt.subplots(
        1, n, figsize=(figure_width(n), height), squeeze=False, layout="constrained"
    )
    return fig, list(axes[0])


def literal_legend(legend) -> None:  # noqa: ANN001
    """Legend labels (run labels: text from run directories) shown as typed, never as math."""
    if legend is not None:
        for text in legend.get_texts():
            text.set_parse_math(False)


def save_figure(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def log_scale(ax: plt.Axes, axis: str = "y") -> None:
    """A log axis labelled at 1, 2 and 5 times powers of ten ("%g"), unlabelled minor ticks: no
    overlapping labels when the data span less than a decade or many decades."""
    getattr(ax, f"set_{axis}scale")("log", nonpositive="mask")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
    target.set_major_formatter(FormatStrFormatter("%g"))
    target.set_minor_formatter(NullFormatter())


def _set_log(ax: plt.Axes, values: list[np.ndarray]) -> None:
    allv = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if allv.size and (allv > 0).any():
        log_scale(ax, "y")


def _vertical_lines(ax: plt.Axes, ctx: FigureContext, i: int) -> None:
    color = ctx.color(i)
    for k, (_t, c) in enumerate(sorted(ctx.crossings.get(i, {}).items())):
        if c is not None:
            ax.axvline(c.step, color=color, ls=THRESHOLD_STYLES[k % len(THRESHOLD_STYLES)], lw=1)
    be = ctx.breakeven.get(i)
    if be is not None:
        ax.axvline(be.step, color=color, ls=BREAKEVEN_STYLE, lw=1.6)
        ax.plot([be.step], [1.0], marker="D", color=color, ms=5, transform=ax.get_xaxis_transform())


def _step_axis(ax: plt.Axes) -> None:
    """The SGD step on a log axis that keeps step 0 (linear below 1) at the left edge; ticks
    labelled at 1, 10, 100, ... (step 0 is the edge, not a tick)."""
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.4)
    ax.set_xlim(left=0)
    right = max(ax.get_xlim()[1], 10.0)
    decades = np.arange(0, int(np.floor(np.log10(right))) + 1)
    ax.xaxis.set_major_locator(FixedLocator(10.0**decades))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    minor = [m * 10.0**d for d in decades for m in range(2, 10) if m * 10.0**d <= right]
    ax.xaxis.set_minor_locator(FixedLocator(minor))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("SGD step (log scale)")


def _legend(ax: plt.Axes, ctx: FigureContext, shown: list[int], lines: bool = True) -> None:
    handles = [Line2D([], [], color=ctx.color(i), lw=2, label=ctx.label(i)) for i in shown]
    if lines:
        thresholds = sorted({t for i in shown for t in ctx.crossings.get(i, {})})
        for k, t in enumerate(thresholds):
            style = THRESHOLD_STYLES[k % len(THRESHOLD_STYLES)]
            handles.append(Line2D([], [], color="grey", ls=style, label=f"train acc > {t:g}"))
        if any(ctx.breakeven.get(i) is not None for i in shown):
            handles.append(
                Line2D([], [], color="grey", ls=BREAKEVEN_STYLE, lw=1.6, label="break-even (Eq. 1)")
            )
    if handles:
        literal_legend(ax.legend(handles=handles, fontsize=7, loc="best"))


def plot_metric_vs_step(ax: plt.Axes, ctx: FigureContext, metric: str) -> list[int]:
    """Draw `metric` against the SGD step for every run that has it; returns the runs drawn."""
    shown, drawn = [], []
    for i, run in enumerate(ctx.runs):
        steps, _, values = get_series(run, metric)
        if not np.isfinite(values).any():
            continue
        color = ctx.color(i)
        se = stderr_series(run, metric, steps)
        if se is not None:  # error band: value ± stderr
            ax.fill_between(steps, values - se, values + se, color=color, alpha=0.2, lw=0)
        if ctx.window and ctx.window > 1:
            ax.plot(steps, values, color=color, alpha=0.25, lw=0.8)
            ax.plot(steps, moving_average(values, ctx.window, ctx.mode), color=color, lw=1.6)
        else:
            ax.plot(steps, values, color=color, lw=1.4, marker="." if len(values) < 60 else None)
        _vertical_lines(ax, ctx, i)
        shown.append(i)
        drawn.append(values)
    if metric in LOG_SCALE:
        _set_log(ax, drawn)
    _step_axis(ax)
    ax.set_ylabel(math_display(metric))
    ax.grid(True, alpha=0.3, which="both")
    return shown


def _time_figure(
    ctx: FigureContext, metrics: list[str], path: Path, title: str, require_all: bool = False
) -> FigureResult:
    present = [m for m in metrics if any(has_series(r, m) for r in ctx.runs)]
    missing = [m for m in metrics if m not in present]
    if not present or (require_all and missing):
        return None, f"{title}: skipped, metric(s) missing: {', '.join(missing)}"
    fig, axes = panel_row(len(present), 3.8)
    for ax, m in zip(axes, present, strict=True):
        shown = plot_metric_vs_step(ax, ctx, m)
        if len(present) > 1:  # a panel title names the metric; one panel: the figure's title
            ax.set_title(math_display(m))
        _legend(ax, ctx, shown)
    smooth = f" (moving average, window {ctx.window}, {ctx.mode})" if ctx.window else ""
    if len(present) > 1:
        fig.suptitle(title + smooth)
    else:
        axes[0].set_title(title + smooth)
    msg = f"{title}: missing {', '.join(map(display, missing))}" if missing else None
    return save_figure(fig, path), msg


def fig4_k(ctx: FigureContext, path: Path) -> FigureResult:
    """Fig. 4 analogue: λ1_K (log) and λ*_K/λ1_K against the step, per run."""
    return _time_figure(
        ctx, [names.K_LAMBDA_1, names.K_RATIO], path, "Fig. 4: variance reduction/pre-conditioning"
    )


def fig5_hessian(ctx: FigureContext, path: Path) -> FigureResult:
    """Fig. 5 analogue: λ1_H (log) against the step, per run."""
    return _time_figure(
        ctx, [names.HESSIAN_LAMBDA_1], path, r"Fig. 5: spectral norm of $H$, $\lambda_1^H$"
    )


def fig_trace_k(ctx: FigureContext, path: Path) -> FigureResult:
    """Tr(K) against the step (log; App. E, Figs. 14-21)."""
    return _time_figure(ctx, [names.K_TRACE], path, r"$\mathrm{Tr}(K)$ per run")


def fig_accuracy(ctx: FigureContext, path: Path) -> FigureResult:
    """Training and validation accuracy against the step (App. E)."""
    return _time_figure(
        ctx, [TRAINING_ACCURACY, names.TEST_ACCURACY], path, "Training and test accuracy"
    )


def fig7_bn(ctx: FigureContext, path: Path) -> FigureResult:
    """Fig. 7 analogue (BatchNorm models only): ||g||/||g5||, λ1_K, ||γ|| against the step."""
    if not any(
        r.metadata.get("has_batchnorm") or has_series(r, names.BN_GAMMA_NORM) for r in ctx.runs
    ):
        return None, "Fig. 7: skipped, no run has BatchNorm (the figure compares BN models)"
    return _time_figure(
        ctx,
        [names.GRAD_NORM_OVER_TOP5, names.K_LAMBDA_1, names.BN_GAMMA_NORM],
        path,
        "Fig. 7: BatchNorm",
    )


def fig_breakeven(ctx: FigureContext, path: Path) -> FigureResult:
    """LHS of Eq. 1 against the step with the stability limit 1 and the break-even points."""
    fig, (ax,) = panel_row(1, 3.8)
    shown = []
    for i, s in ctx.eq1.items():
        if s is None or not np.isfinite(s.values).any():
            continue
        ax.plot(s.steps, s.values, color=ctx.color(i), lw=1.4, marker=".")
        _vertical_lines(ax, ctx, i)
        shown.append(i)
    if not shown:
        plt.close(fig)
        return None, "Eq. 1 figure: skipped, no breakeven/eq1_lhs and nothing to recompute it from"
    ax.axhline(1.0, color="k", lw=0.8)
    sources = sorted({ctx.eq1[i].source for i in shown})  # type: ignore[union-attr]
    _step_axis(ax)
    ax.set_ylabel(EQ1_LHS)
    ax.set_title(f"Eq. 1 LHS ({', '.join(sources)}); break-even where it first reaches 1")
    ax.grid(True, alpha=0.3)
    _legend(ax, ctx, shown)
    return save_figure(fig, path), None


def _paired(run: Run, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for r in run.rows:
        if r.get(x) is not None and r.get(y) is not None:
            xs.append(float(r[x]))
            ys.append(float(r[y]))
    return np.asarray(xs), np.asarray(ys)


def fig2_scatter(ctx: FigureContext, path: Path) -> FigureResult:
    """Fig. 2 analogue: λ1_H vs λ1_K (left) and ΔL vs λ1_K (right), coloured by run.

    Points are measurements holding both metrics in the same row (same step).
    """
    k = math_display(names.K_LAMBDA_1)
    panels = [
        (names.HESSIAN_LAMBDA_1, f"{math_display(names.HESSIAN_LAMBDA_1)} vs {k}"),
        (names.LOSS_DELTA, f"{math_display(names.LOSS_DELTA)} vs {k}"),
    ]
    data = {
        y: [(i, *_paired(r, names.K_LAMBDA_1, y)) for i, r in enumerate(ctx.runs)]
        for y, _ in panels
    }
    present = [(y, t) for y, t in panels if any(xs.size for _, xs, _ in data[y])]
    if not present:
        return None, "Fig. 2: skipped, no rows with K/lambda_1 and hessian/lambda_1 or loss/delta"
    fig, axes = panel_row(len(present), 4)
    for ax, (y, title) in zip(axes, present, strict=True):
        shown = []
        for i, xs, ys in data[y]:
            if xs.size:
                ax.scatter(xs, ys, s=14, color=ctx.color(i), alpha=0.8)
                shown.append(i)
        allx = np.concatenate([xs for _, xs, _ in data[y]])
        if (allx > 0).any():
            log_scale(ax, "x")
        if y == names.HESSIAN_LAMBDA_1:
            _set_log(ax, [ys for _, _, ys in data[y]])
        else:
            ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel(k)
        ax.set_ylabel(math_display(y))
        ax.set_title(title)
        ax.grid(True, alpha=0.3, which="both")
        _legend(ax, ctx, shown, lines=False)
    missing = [display(y) for y, _ in panels if (y, dict(panels)[y]) not in present]
    fig.suptitle(f"Fig. 2: curvature and stability against {k}")
    note = f"Fig. 2: no panel for {', '.join(missing)}" if missing else None
    return save_figure(fig, path), note


def fig9_m_correlation(ctx: FigureContext, path: Path) -> FigureResult:
    """Fig. 9 analogue: λ1_K with the smallest vs the largest K_M, Pearson r (see kbatch)."""
    pairs = find_m_pairs(ctx.runs)
    if not pairs:
        return None, (
            "Fig. 9: skipped, no two runs of the same trajectory with different K_M and "
            "K/lambda_1 at common steps"
        )
    fig, (ax,) = panel_row(1, 4.2)
    for k, p in enumerate(pairs):
        i = ctx.runs.index(p.large)
        lab = f"{ctx.label(i)}: r = {p.pearson_r:.3f} (n={p.steps.size})"
        ax.scatter(
            p.lambda_small, p.lambda_large, s=14, color=plt.get_cmap("tab10")(k % 10), label=lab
        )
    allx = np.concatenate([p.lambda_small for p in pairs])
    ally = np.concatenate([p.lambda_large for p in pairs])
    r_all = pearson_r(allx, ally)
    ms = sorted({(p.m_small, p.m_large) for p in pairs})
    k = math_display(names.K_LAMBDA_1)
    ax.set_xlabel(f"{k}, $M$ = {', '.join(str(a) for a, _ in ms)}")
    ax.set_ylabel(f"{k}, $M$ = {', '.join(str(b) for _, b in ms)}")
    if (allx > 0).all() and (ally > 0).all():
        log_scale(ax, "x")
        log_scale(ax, "y")
    ax.set_title(f"Fig. 9: {k} for two $M$, pooled Pearson $r$ = {r_all:.3f}")
    ax.grid(True, alpha=0.3, which="both")
    literal_legend(ax.legend(fontsize=7))
    return save_figure(fig, path), None

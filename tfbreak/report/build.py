"""The report's data model, assembled from the runs of one sweep (paper, Sec. 3, Sec. 4.2, Eq. 1).

`build` computes what the report shows: the sweep (`tfbreak.analysis.sweep`), per run its
break-even point (first step with Eq. 1 LHS >= 1) and the first epochs above the accuracy thresholds
(Fig. 4's vertical lines), the paper's figures (drawn into the output directory), per-run summaries,
the conjecture verdicts (`tfbreak.analysis.verdicts`) and the caveats that change how they read
(`tfbreak.analysis.caveats`). Tables (`tables`), sentences (`prose`)
and the document (`document`, `render`) read the resulting `Report`; the only text here is what the
analysis already words (why a figure was skipped, UMAP messages) and the figures' captions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tfbreak.analysis import figures, noise, spectra_figure, thresholds
from tfbreak.analysis.breakeven import BreakEvenPoint, Eq1Series, detect_break_even
from tfbreak.analysis.caveats import Caveats, find_caveats
from tfbreak.analysis.series import TRAINING_ACCURACY, has_series
from tfbreak.analysis.smoothing import Mode
from tfbreak.analysis.summary import RunSummary, summarize_sweep
from tfbreak.analysis.sweep import Sweep, make_sweep
from tfbreak.analysis.thresholds import Crossing
from tfbreak.analysis.verdicts import Verdict, check_conjectures, sweep_reason
from tfbreak.runs import Run

FigureFunction = Callable[[figures.FigureContext, Path], figures.FigureResult]

# (file, figure function, caption), in the order the report shows them; KEY_FIGURES come first.
FIGURES: tuple[tuple[str, FigureFunction, str], ...] = (
    (
        "fig4_K.png",
        figures.fig4_k,
        "Fig. 4 analogue: λ1_K (log scale) and λ*_K/λ1_K against the SGD step, per run.",
    ),
    ("fig5_hessian.png", figures.fig5_hessian, "Fig. 5 analogue: λ1_H (log scale) per run."),
    ("trace_K.png", figures.fig_trace_k, "Tr(K) (log scale) per run: Conjecture 2's second check."),
    (
        "breakeven_eq1.png",
        figures.fig_breakeven,
        "The left side of Eq. 1 per run; break-even where it first reaches 1 (the black line).",
    ),
    (
        "fig2_scatter.png",
        figures.fig2_scatter,
        "Fig. 2 analogue: λ1_H and ΔL (the loss change of one SGD step on a fixed batch) "
        "against λ1_K, one point per measurement.",
    ),
    (
        "fig3_spectra.png",
        spectra_figure.fig3_spectra,
        "Fig. 3 analogue: the eigenvalues of K at each run's max λ1_K, and the spectrum of H at "
        "its max λ1_H: the SLQ density with the certified top eigenvalues marked when measured, "
        "else the top Ritz values (filled where certified to 10%).",
    ),
    (
        "accuracy.png",
        figures.fig_accuracy,
        "Training accuracy and test accuracy (the whole held-out split at epoch ends: the "
        "paper's validation accuracy).",
    ),
    ("fig7_bn.png", figures.fig7_bn, "Fig. 7 analogue (BatchNorm): ||g||/||g5||, λ1_K, ||γ||."),
    ("fig9_M.png", figures.fig9_m_correlation, "Fig. 9 analogue: λ1_K with two M."),
)
KEY_FIGURES = frozenset({"fig4_K.png", "fig5_hessian.png", "trace_K.png"})
# (key of umap_trajectory.plot_umap, file, caption)
UMAP_FIGURES = (
    (
        "fig1",
        "fig1_umap.png",
        "Fig. 1 analogue: the trajectories as their test predictions embedded by UMAP (square: "
        "the start); background: λ1_K and training accuracy at the nearest embedded point.",
    ),
    (
        "fig8",
        "fig8_umap.png",
        "Fig. 8 analogue: the same embedding; background: λ*_K/λ1_K, Tr(K) and λ1_H.",
    ),
)


@dataclass(frozen=True)
class ReportOptions:
    """What the report computes: smoothing, accuracy thresholds, UMAP, bootstrap."""

    window: int | None = None  # moving-average window (measurements); None: raw only
    mode: Mode = "trailing"
    thresholds: tuple[float, ...] = (0.6, 0.75)  # Sec. 4.2: 60 % (CIFAR-10), 75 % (IMDB)
    umap: bool = True  # Figs. 1 and 8
    replicates: int = noise.DEFAULT_REPLICATES
    bootstrap_seed: int = 0


@dataclass(frozen=True)
class RunPhases:
    """One run's break-even point (Eq. 1) and accuracy-threshold crossings."""

    breakeven: BreakEvenPoint | None
    eq1: Eq1Series | None  # the Eq. 1 LHS series used (measured or recomputed)
    why: str | None  # why there is no break-even point (worded by analysis.breakeven)
    crossings: dict[float, Crossing | None]
    has_accuracy: bool  # a training-accuracy series exists ("never" vs "—" when not crossed)


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str

    @property
    def key(self) -> bool:
        """One of the figures shown right after the verdicts (`KEY_FIGURES`)."""
        return self.path.name in KEY_FIGURES


@dataclass
class Report:
    """Everything one sweep's report shows."""

    title: str
    generated: datetime
    options: ReportOptions
    sweep: Sweep
    phases: list[RunPhases]  # aligned with sweep.runs
    summaries: list[RunSummary]
    verdicts: list[Verdict]
    caveats: Caveats
    figures: list[Figure] = field(default_factory=list)
    figure_messages: list[str] = field(default_factory=list)  # skipped figures, UMAP


def run_phases(run: Run, accuracy_thresholds: tuple[float, ...]) -> RunPhases:
    """Break-even point and threshold crossings of one run."""
    point, eq1, why = detect_break_even(run)
    crossings = thresholds.accuracy_crossings(run, list(accuracy_thresholds))
    return RunPhases(point, eq1, why, crossings, has_series(run, TRAINING_ACCURACY))


def figure_context(
    sweep: Sweep, phases: list[RunPhases], options: ReportOptions
) -> figures.FigureContext:
    """The figures' view of the sweep: vertical lines at crossings and break-even points."""
    return figures.FigureContext(
        sweep,
        crossings={i: p.crossings for i, p in enumerate(phases)},
        breakeven={i: p.breakeven for i, p in enumerate(phases)},
        eq1={i: p.eq1 for i, p in enumerate(phases)},
        window=options.window,
        mode=options.mode,
    )


def draw_figures(ctx: figures.FigureContext, out: Path) -> tuple[list[Figure], list[str]]:
    """Every figure of `FIGURES` that the runs have data for, and why the others are skipped."""
    made: list[Figure] = []
    messages: list[str] = []
    for fname, draw, caption in FIGURES:
        path, msg = draw(ctx, out / fname)
        if path is not None:
            made.append(Figure(path, caption))
        if msg:
            messages.extend(msg.splitlines())
    return made, messages


def draw_umap(sweep: Sweep, out: Path) -> tuple[list[Figure], list[str]]:
    """Figs. 1 and 8 (UMAP of the test predictions along the trajectories), and messages."""
    from tfbreak.analysis import umap_trajectory  # umap-learn is slow to import

    written, messages = umap_trajectory.plot_umap(
        sweep, {key: out / fname for key, fname, _ in UMAP_FIGURES}
    )
    made = [Figure(written[key], caption) for key, _, caption in UMAP_FIGURES if key in written]
    return made, list(messages)


def build(runs: list[Run], out: Path, options: ReportOptions, title: str = "sweep") -> Report:
    """The report of one sweep; its figures are drawn into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    sweep = make_sweep(runs)
    phases = [run_phases(run, options.thresholds) for run in sweep.runs]
    made, messages = draw_figures(figure_context(sweep, phases, options), out)
    if options.umap:
        umap_made, umap_messages = draw_umap(sweep, out)
        made += umap_made
        messages += umap_messages
    summaries = summarize_sweep(
        sweep,
        options.window,
        options.mode,
        replicates=options.replicates,
        seed=options.bootstrap_seed,
    )
    verdicts = check_conjectures(summaries, sweep, options.window, seed=options.bootstrap_seed)
    caveats = find_caveats(summaries, compared=sweep_reason(summaries, sweep) is None)
    return Report(
        title,
        datetime.now(timezone.utc),
        options,
        sweep,
        phases,
        summaries,
        verdicts,
        caveats,
        made,
        messages,
    )

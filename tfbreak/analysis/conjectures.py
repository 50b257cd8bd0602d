"""Verdicts on Conjectures 1 and 2 over a sweep of η or S (paper, Sec. 3 and Sec. 4.2).

Conjecture 1 (variance reduction): max λ1_H and max λ1_K along the trajectory are smaller for a
larger learning rate η or a smaller batch size S.
Conjecture 2 (pre-conditioning): max λ*_K/λ1_K is larger, and max Tr(K) smaller, for a larger η or
a smaller S. (The Hessian half, λ*_H/λ1_H and Tr(H), is not tested: the paper leaves it too.)

How a check is decided (one check per metric):
  * Runs are ordered from the noisiest to the least noisy SGD: η descending, or S ascending.
  * The maximum is over the raw measurements of each run (Sec. 4.2 quotes raw maxima); if a
    smoothing window is given the check is repeated on smoothed maxima and reported alongside.
  * Several runs with the same sweep value (seeds) are averaged (mean of their maxima).
  * "holds": strictly monotone in the predicted direction over ALL pairs of sweep values;
    "violated": some pair is not (ties count as violations) — the pairs are named;
    "inconclusive": fewer than 2 usable sweep values, the metric is missing, the sweep varies
    something other than exactly one of η / S, or (for K metrics) K was measured with different
    K_M / K_L between runs. Diverged and failed runs are excluded (the conjectures are stated for
    trajectories that converge, Sec. 3) and the exclusion is reported.
A conjecture's overall verdict: violated if any of its checks is violated, holds if all hold,
inconclusive otherwise.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tfbreak.analysis.series import display, get_series
from tfbreak.analysis.smoothing import Maxima, Mode, maxima
from tfbreak.analysis.sweep import AXIS_SYMBOL, Sweep
from tfbreak.runs import Run, names

Status = Literal["holds", "violated", "inconclusive"]
EXCLUDED_STATUSES = ("diverged", "failed")

# (conjecture, metric, predicted direction as noise increases: -1 decreases, +1 increases)
CHECKS: tuple[tuple[int, str, int], ...] = (
    (1, names.HESSIAN_LAMBDA_1, -1),
    (1, names.K_LAMBDA_1, -1),
    (2, names.K_RATIO, +1),
    (2, names.K_TRACE, -1),
)
TABLE_METRICS = (names.HESSIAN_LAMBDA_1, names.K_LAMBDA_1, names.K_RATIO, names.K_TRACE)
K_METRICS = frozenset({names.K_LAMBDA_1, names.K_RATIO, names.K_TRACE})


@dataclass
class RunSummary:
    """One run's row of the conjecture table."""

    run: Run
    label: str
    value: Any  # sweep value
    lr: Any
    batch_size: Any
    status: str
    stop_reason: str | None
    maxima: dict[str, Maxima]
    excluded: str | None = None  # why the run is not used in verdicts

    @property
    def usable(self) -> bool:
        return self.excluded is None


@dataclass
class Check:
    """Verdict of one metric's check within a conjecture."""

    conjecture: int
    metric: str
    status: Status
    sentence: str
    violated_pairs: list[tuple[str, str]] = field(default_factory=list)
    smoothed_status: Status | None = None


@dataclass
class Verdict:
    """Overall verdict on one conjecture, with its checks and notes."""

    conjecture: int
    status: Status
    checks: list[Check]
    notes: list[str]


def summarize_run(
    run: Run, label: str, value: Any, window: int | None = None, mode: Mode = "trailing"
) -> RunSummary:
    """Maxima (raw and smoothed) of the conjecture metrics for one run."""
    mx = {m: maxima(*get_series(run, m), window=window, mode=mode) for m in TABLE_METRICS}
    excluded = None
    if run.status in EXCLUDED_STATUSES:
        excluded = f"{run.status}" + (f": {run.stop_reason}" if run.stop_reason else "")
    return RunSummary(
        run=run,
        label=label,
        value=value,
        lr=run.metadata.get("lr"),
        batch_size=run.metadata.get("batch_size"),
        status=run.status,
        stop_reason=run.stop_reason,
        maxima=mx,
        excluded=excluded,
    )


def summarize_sweep(
    sweep: Sweep, window: int | None = None, mode: Mode = "trailing"
) -> list[RunSummary]:
    """`summarize_run` for every run of the sweep, in sweep order."""
    return [summarize_run(r, sweep.label(r), sweep.value(r), window, mode) for r in sweep.runs]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _val(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _noise_order(axis: str, values: list[Any]) -> list[Any]:
    """Sweep values from noisiest to least noisy SGD: η descending / S ascending."""
    return sorted(values, reverse=(axis == "lr"))


def _check_metric(
    conjecture: int,
    metric: str,
    direction: int,
    axis: str,
    usable: list[RunSummary],
    smoothed: bool,
) -> tuple[Status, str, list[tuple[str, str]]]:
    sym = AXIS_SYMBOL.get(axis, axis)
    groups: dict[Any, list[float]] = {}
    for s in usable:
        m = s.maxima[metric].smoothed if smoothed else s.maxima[metric].raw
        if m is not None:
            groups.setdefault(s.value, []).append(m.value)
    what = f"max {display(metric)}" + (" (smoothed)" if smoothed else "")
    if len(groups) < 2:
        have = ", ".join(f"{sym}={_val(v)}" for v in groups) or "none"
        return "inconclusive", f"{what}: fewer than 2 usable sweep values (have: {have})", []
    order = _noise_order(axis, list(groups))
    mean = {v: float(np.mean(groups[v])) for v in order}

    def item(v: Any) -> str:
        n = len(groups[v])
        return f"{sym}={_val(v)} → {_fmt(mean[v])}" + (f" (mean of {n} runs)" if n > 1 else "")

    chain = f"{what}: " + item(order[0])
    for a, b in zip(order, order[1:], strict=False):
        rel = "<" if mean[a] < mean[b] else (">" if mean[a] > mean[b] else "=")
        chain += f" {rel} {item(b)}"
    violated: list[tuple[str, str]] = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            # direction -1: value decreases with noise, i.e. noisier a must be strictly below b.
            ok = mean[a] < mean[b] if direction < 0 else mean[a] > mean[b]
            if not ok:
                violated.append((f"{sym}={_val(a)}", f"{sym}={_val(b)}"))
    if violated:
        pairs = "; ".join(f"{a} vs {b}" for a, b in violated)
        return "violated", f"{chain}: violated (pairs out of order: {pairs})", violated
    return "holds", f"{chain}: holds", []


def check_conjectures(
    summaries: list[RunSummary], sweep: Sweep, window: int | None = None
) -> list[Verdict]:
    """Verdicts on Conjectures 1 and 2 for the sweep (see module doc for the rules)."""
    notes: list[str] = []
    for s in summaries:
        if s.excluded:
            notes.append(f"excluded {s.label} from the verdicts ({s.excluded})")
        elif s.status not in ("completed", "unknown"):
            notes.append(f"{s.label} is {s.status}: its maxima cover only the measured part")
    usable = [s for s in summaries if s.usable]
    global_reason = None
    if sweep.axis not in ("lr", "batch_size"):
        if len(summaries) < 2:
            global_reason = "a single run: nothing to compare"
        elif sweep.varying:
            global_reason = (
                f"the sweep varies {', '.join(sweep.varying)}; the conjectures concern η or S only"
            )
        else:
            global_reason = "the runs do not differ in η or S"
    elif set(sweep.varying) - {sweep.axis}:
        others = ", ".join(sorted(set(sweep.varying) - {sweep.axis}))
        global_reason = f"besides {sweep.axis}, the sweep also varies {others}"
    if global_reason:
        notes.append(f"all checks inconclusive: {global_reason}")
    verdicts = []
    for conj in (1, 2):
        checks = []
        for c, metric, direction in CHECKS:
            if c != conj:
                continue
            what = f"max {display(metric)}"
            if global_reason:
                checks.append(Check(conj, metric, "inconclusive", f"{what}: {global_reason}"))
                continue
            if metric in K_METRICS and set(sweep.varying_measurement) & {"K_M", "K_L"}:
                checks.append(
                    Check(
                        conj,
                        metric,
                        "inconclusive",
                        f"{what}: K was estimated with different K_M/K_L across runs",
                    )
                )
                continue
            if not any(s.maxima[metric].raw is not None for s in summaries):
                checks.append(Check(conj, metric, "inconclusive", f"{what}: metric missing"))
                continue
            assert sweep.axis is not None
            status, sentence, violated = _check_metric(
                conj, metric, direction, sweep.axis, usable, smoothed=False
            )
            check = Check(conj, metric, status, sentence, violated)
            if window and window > 1:
                sstatus, _, _ = _check_metric(
                    conj, metric, direction, sweep.axis, usable, smoothed=True
                )
                check.smoothed_status = sstatus
                check.sentence += f" [on smoothed maxima, window {window}: {sstatus}]"
            checks.append(check)
        statuses = [c.status for c in checks]
        if "violated" in statuses:
            overall: Status = "violated"
        elif all(s == "holds" for s in statuses):
            overall = "holds"
        else:
            overall = "inconclusive"
        verdicts.append(Verdict(conj, overall, checks, notes))
    return verdicts


def _max_cell(m: Maxima, smoothed: bool = False) -> str:
    x = m.smoothed if smoothed else m.raw
    return "—" if x is None else f"{x.value:.4g} (step {x.step})"


def table_rows(summaries: list[RunSummary], window: int | None = None) -> list[dict[str, Any]]:
    """Per-run table rows (dicts) for the Markdown and CSV tables."""
    out = []
    for s in summaries:
        row: dict[str, Any] = {
            "run": s.label,
            "sweep value": s.value,
            "lr": s.lr,
            "batch size": s.batch_size,
            "status": s.status + (" (excluded)" if s.excluded else ""),
        }
        for m in TABLE_METRICS:
            row[f"max {display(m)}"] = _max_cell(s.maxima[m])
            if window and window > 1:
                row[f"max {display(m)} smoothed"] = _max_cell(s.maxima[m], smoothed=True)
        out.append(row)
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown pipe table from a list of dicts with the same keys."""
    if not rows:
        return "_(no runs)_\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r[k]).replace("|", "\\|") for k in keys) + " |")
    return "\n".join(lines) + "\n"


def csv_table(summaries: list[RunSummary], window: int | None = None) -> str:
    """CSV with one row per run: numeric maxima and the steps where they are attained."""
    buf = io.StringIO()
    w = csv.writer(buf)
    header = ["run", "dir", "sweep_value", "lr", "batch_size", "status", "excluded", "stop_reason"]
    for m in TABLE_METRICS:
        header += [f"max_{m}", f"max_{m}_step", f"max_{m}_epoch"]
        if window and window > 1:
            header += [f"max_{m}_smoothed", f"max_{m}_smoothed_step"]
    w.writerow(header)
    for s in summaries:
        row = [
            s.label,
            str(s.run.path),
            s.value,
            s.lr,
            s.batch_size,
            s.status,
            s.excluded or "",
            s.stop_reason or "",
        ]
        for m in TABLE_METRICS:
            raw = s.maxima[m].raw
            row += ["", "", ""] if raw is None else [repr(raw.value), raw.step, repr(raw.epoch)]
            if window and window > 1:
                sm = s.maxima[m].smoothed
                row += ["", ""] if sm is None else [repr(sm.value), sm.step]
        w.writerow(row)
    return buf.getvalue()

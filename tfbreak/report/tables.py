"""The report's tables and CSV files (paper, Sec. 4.2 maxima; Sec. 3 verdicts; Eq. 1).

A table is a list of dicts with the same keys (column order = key order), rendered by
`tfbreak.report.render`. Tables: runs, the conjecture maxima per run (also conjectures.md), the
noise-aware verdicts per window, the maxima per window, break-even points with accuracy
thresholds. CSV files: conjectures.csv (one row per run: numeric maxima and their steps) and
conjectures_windows.csv (long format: noisy maxima per run/metric/window, verdicts per
conjecture and check).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import numpy as np

from tfbreak.analysis.noise import WINDOW_TITLE, WINDOWS
from tfbreak.analysis.series import display
from tfbreak.analysis.smoothing import Maxima
from tfbreak.analysis.summary import CONJECTURE_METRICS, RunSummary
from tfbreak.analysis.verdicts import Verdict, WindowCheck, WindowKey, WindowVerdict
from tfbreak.report.build import Report
from tfbreak.report.formats import (
    MISSING,
    cell,
    conjecture_title,
    exclusion,
    interval,
    number,
    status_cell,
)
from tfbreak.runs import Run, names

Row = dict[str, Any]
WINDOWS_CSV_FIELDS = (
    "record",
    "run",
    "conjecture",
    "metric",
    "window",
    "smoothed",
    "value",
    "step",
    "lo",
    "hi",
    "stderr_used",
    "status",
    "confidence",
    "seed_share",
    "breakeven_step",
)


def _smoothed(window: int | None) -> bool:
    return window is not None and window > 1


def _at_step(value: float, step: int) -> str:
    return f"{number(value)} (step {step})"


def hessian_sample_cell(run: Run) -> str:
    """The examples of the Hessian sample: the fixed size, or for an adaptive sample
    (--hessian_target_error) the sizes the measurements ended with and the target."""
    _, _, sizes = run.series(names.HESSIAN_SAMPLE_SIZE)
    sizes = sizes[np.isfinite(sizes)]
    if not sizes.size:
        return cell(run.metadata.get("hessian_sample_size"))
    lo, hi = int(sizes.min()), int(sizes.max())
    target = (run.metadata.get("config") or {}).get("hessian_target_error")
    goal = f", target {target:.3g}" if isinstance(target, int | float) else ""
    return f"{lo}–{hi} (adaptive{goal})" if hi > lo else f"{lo} (adaptive{goal})"


def run_rows(report: Report) -> list[Row]:
    """One row per run: directory, model and data, η, S, K_M, Hessian sample, seed, status,
    last step."""
    rows = []
    for label, run in zip(report.sweep.labels, report.sweep.runs, strict=True):
        md = run.metadata
        rows.append(
            {
                "run": label,
                "directory": str(run.path),
                "model / data": f"{md.get('model', MISSING)} / {md.get('dataset', MISSING)}",
                "lr": cell(md.get("lr")),
                "S": cell(md.get("batch_size")),
                "K_M": cell(md.get("K_M")),
                "Hessian sample": hessian_sample_cell(run),
                "seed": cell(md.get("seed")),
                "status": run.status,
                "stop reason": run.stop_reason or MISSING,
                "last step": cell(run.last_step()),
            }
        )
    return rows


def _max_cell(m: Maxima, kind: str = "raw") -> str:
    x = getattr(m, kind)
    return MISSING if x is None else _at_step(x.value, x.step)


def conjecture_rows(summaries: list[RunSummary], window: int | None = None) -> list[Row]:
    """Per run: sweep value, η, S, status and the raw and robust maxima of the conjecture metrics
    (with the step where each is attained); smoothed maxima too when `window` > 1. Also
    conjectures.md."""
    out = []
    for s in summaries:
        row: Row = {
            "run": s.label,
            "sweep value": s.value,
            "lr": s.lr,
            "batch size": s.batch_size,
            "status": s.status + (" (excluded)" if s.excluded else ""),
        }
        for m in CONJECTURE_METRICS:
            row[f"max {display(m)}"] = _max_cell(s.maxima[m])
            row[f"robust max {display(m)}"] = _max_cell(s.maxima[m], "robust")
            if _smoothed(window):
                row[f"max {display(m)} smoothed"] = _max_cell(s.maxima[m], "smoothed")
        out.append(row)
    return out


def _verdict_row(
    conjecture: str,
    check: str,
    literal: str,
    smoothed: bool,
    windows: dict[WindowKey, WindowVerdict] | dict[WindowKey, WindowCheck],
) -> Row:
    row: Row = {
        "conjecture": conjecture,
        "check": check,
        "maxima": "smoothed" if smoothed else "raw",
        "paper (literal)": literal,
    }
    for w in WINDOWS:
        x = windows.get((w, smoothed))
        row[WINDOW_TITLE[w]] = MISSING if x is None else status_cell(x.status, x.confidence)
    return row


def window_verdict_rows(verdicts: list[Verdict]) -> list[Row]:
    """One row per conjecture and check, raw then smoothed maxima: the literal verdict, then the
    three windows. Cells: status (confidence = share of replicates in the predicted order)."""
    out = []
    for v in verdicts:
        for smoothed in sorted({k for _, k in v.windows}):
            literal = MISSING if smoothed else v.status
            out.append(
                _verdict_row(
                    conjecture_title(v.conjecture), "all checks", literal, smoothed, v.windows
                )
            )
            for c in v.checks:
                literal = (c.smoothed_status or MISSING) if smoothed else c.status
                out.append(
                    _verdict_row("", f"max {display(c.metric)}", literal, smoothed, c.windows)
                )
    return out


def window_maxima_rows(summaries: list[RunSummary], window: int | None = None) -> list[Row]:
    """Per run and metric: break-even step and, per window, max (step) [95 % interval]."""
    out = []
    kinds = [False, True] if _smoothed(window) else [False]
    for s in summaries:
        if s.windows is None:
            continue
        be = s.windows.breakeven
        for m in CONJECTURE_METRICS:
            if s.maxima[m].raw is None:
                continue
            row: Row = {
                "run": s.label,
                "metric": display(m),
                "stderr": "yes" if s.windows.has_stderr.get(m) else "no",
                "break-even step": be.step if be is not None else MISSING,
            }
            for smoothed in kinds:
                for w in WINDOWS:
                    x = s.windows.maxima.get((m, w, smoothed))
                    key = WINDOW_TITLE[w] + (" (smoothed)" if smoothed else "")
                    row[key] = (
                        MISSING if x is None else _at_step(x.value, x.step) + interval(x.lo, x.hi)
                    )
            out.append(row)
    return out


def breakeven_rows(report: Report) -> list[Row]:
    """Per run: where the Eq. 1 LHS comes from, the break-even point, and the first epoch with
    training accuracy above each threshold ("never" if it has accuracy but never crosses)."""
    out = []
    for label, ph in zip(report.sweep.labels, report.phases, strict=True):
        p = ph.breakeven
        row: Row = {
            "run": label,
            "Eq. 1 LHS": ph.eq1.source if ph.eq1 is not None else "unavailable",
            "break-even step": cell(p.step) if p else MISSING,
            "epoch": cell(p.epoch) if p else MISSING,
            "LHS there": cell(p.value) if p else MISSING,
        }
        if p is not None and p.at_start:
            row["LHS there"] += " (already ≥ 1 at first measurement)"
        for t, c in ph.crossings.items():
            never = "never" if ph.has_accuracy else MISSING
            row[f"train acc > {t:g}: epoch"] = cell(c.epoch) if c else never
        out.append(row)
    return out


def conjectures_csv(summaries: list[RunSummary], window: int | None = None) -> str:
    """conjectures.csv: one row per run, numeric maxima and the steps where they are attained."""
    buf = io.StringIO()
    w = csv.writer(buf)
    header = ["run", "dir", "sweep_value", "lr", "batch_size", "status", "excluded", "stop_reason"]
    for m in CONJECTURE_METRICS:
        header += [f"max_{m}", f"max_{m}_step", f"max_{m}_epoch", f"robust_max_{m}"]
        header += [f"robust_max_{m}_step"]
        if _smoothed(window):
            header += [f"max_{m}_smoothed", f"max_{m}_smoothed_step"]
    w.writerow(header)
    for s in summaries:
        row = [s.label, str(s.run.path), s.value, s.lr, s.batch_size, s.status]
        row += [exclusion(s) if s.excluded else "", s.stop_reason or ""]
        for m in CONJECTURE_METRICS:
            raw, robust = s.maxima[m].raw, s.maxima[m].robust
            row += ["", "", ""] if raw is None else [repr(raw.value), raw.step, repr(raw.epoch)]
            row += ["", ""] if robust is None else [repr(robust.value), robust.step]
            if _smoothed(window):
                sm = s.maxima[m].smoothed
                row += ["", ""] if sm is None else [repr(sm.value), sm.step]
        w.writerow(row)
    return buf.getvalue()


def _repr(x: float | None) -> str:
    return "" if x is None else repr(x)


def _maximum_records(summaries: list[RunSummary]) -> Iterator[Row]:
    for s in summaries:
        if s.windows is None:
            continue
        be = s.windows.breakeven
        for (metric, win, smoothed), x in s.windows.maxima.items():
            rec: Row = {"record": "maximum", "run": s.label, "metric": metric, "window": win}
            rec.update(smoothed=smoothed, breakeven_step="" if be is None else be.step)
            if x is not None:
                rec.update(value=repr(x.value), step=x.step, lo=repr(x.lo), hi=repr(x.hi))
                rec.update(stderr_used=x.noisy)
            yield rec


def _verdict_record(
    record: str, conjecture: int, key: WindowKey, x: WindowVerdict | WindowCheck
) -> Row:
    return {
        "record": record,
        "conjecture": conjecture,
        "window": key[0],
        "smoothed": key[1],
        "status": x.status,
        "confidence": _repr(x.confidence),
    }


def _verdict_records(verdicts: list[Verdict]) -> Iterator[Row]:
    for v in verdicts:
        for key, wv in v.windows.items():
            yield _verdict_record("conjecture", v.conjecture, key, wv)
        for c in v.checks:
            for key, wc in c.windows.items():
                rec = _verdict_record("check", v.conjecture, key, wc)
                yield rec | {"metric": c.metric, "seed_share": _repr(wc.seed_share)}


def conjectures_windows_csv(summaries: list[RunSummary], verdicts: list[Verdict]) -> str:
    """conjectures_windows.csv: per run/metric/window/kind the maximum with its interval
    (record "maximum"), then per conjecture and check the noise-aware verdict."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, WINDOWS_CSV_FIELDS, restval="")
    w.writeheader()
    w.writerows(_maximum_records(summaries))
    w.writerows(_verdict_records(verdicts))
    return buf.getvalue()

"""The report's tables and CSV files (paper, Sec. 4.2 maxima; Sec. 3 verdicts; Eq. 1).

A table is a list of dicts with the same keys (column order = key order), rendered by
`tfbreak.report.render`. Tables: the verdicts per conjecture (the answer), the second half's
medians per check, break-even points with accuracy thresholds, the checks per window, the
statistics per run and window, the runs, the conjecture maxima per run (also conjectures.md).
CSV files: conjectures.csv (one row per run: maxima and where they are attained, the second
half's maxima and medians, and beside each metric the verdicts of its check) and
conjectures_windows.csv (long format: statistics per run/metric/window/statistic, verdicts per
conjecture and check). Text cells of a CSV that a spreadsheet would run as a formula are
neutralised (`csv_cell`); numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from tfbreak.analysis.noise import WINDOWS, NoisyStatistic, window_statistics
from tfbreak.analysis.series import display
from tfbreak.analysis.smoothing import Maxima
from tfbreak.analysis.summary import CONJECTURE_METRICS, RunSummary
from tfbreak.analysis.verdicts import CHECKS, Verdict, WindowCheck, WindowKey, WindowVerdict
from tfbreak.report.build import Report
from tfbreak.report.formats import (
    MISSING,
    cell,
    conjecture_title,
    exclusion,
    interval,
    key_title,
    number,
    status_cell,
)
from tfbreak.runs import Run, names

Row = dict[str, Any]
WHOLE: WindowKey = ("whole", "max")
LATE_MAX: WindowKey = ("late", "max")
LATE_MEDIAN: WindowKey = ("late", "median")
ANSWER_KEYS: tuple[WindowKey, ...] = (WHOLE, LATE_MAX, LATE_MEDIAN)  # the verdicts shown first
WINDOWS_CSV_FIELDS = (
    "record",
    "run",
    "conjecture",
    "metric",
    "window",
    "statistic",
    "value",
    "step",
    "lo",
    "hi",
    "n",
    "stderr_used",
    "status",
    "confidence",
    "seed_share",
    "breakeven_step",
    "late_start",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP: CSV injection
MODE_SUFFIXES = ("_mode", "_precision", "_policy", "_layers")  # how measurements were made
PREDICTED = {-1: "smaller", +1: "larger"}


# ------------------------------------------------------------------ cells
def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as written: numbers (and text that is a plain number) stay;
    text starting with ``= + - @``, a tab or a carriage return gets a leading apostrophe, so it
    is never run as a formula (OWASP, CSV injection)."""
    if value is None or isinstance(value, bool | int | float | np.integer | np.floating):
        return value
    text = str(value)
    if text.startswith(FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def _csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([csv_cell(h) for h in header])
    w.writerows([csv_cell(c) for c in row] for row in rows)
    return buf.getvalue()


def _smoothed(window: int | None) -> bool:
    return window is not None and window > 1


def _at_step(value: float, step: int | None) -> str:
    return number(value) if step is None else f"{number(value)} (step {step})"


def _statistic_cell(x: NoisyStatistic | None) -> str:
    return MISSING if x is None else _at_step(x.value, x.step) + interval(x.lo, x.hi)


# ------------------------------------------------------------------ the answer
def _answer_cell(v: Verdict, key: WindowKey) -> str:
    wv = v.windows.get(key)
    return MISSING if wv is None else status_cell(wv.status, wv.confidence)


def answer_rows(report: Report) -> list[Row]:
    """One row per conjecture: what it predicts for noisier SGD, the noise-aware verdict on the
    whole trajectory (the paper's window) and in the second half (maxima, medians), and the
    paper's literal rule."""
    axis = report.sweep.axis
    noisier = {"lr": "larger η", "batch_size": "smaller S"}.get(axis or "", "noisier SGD")
    out = []
    for v in report.verdicts:
        predicted = "; ".join(
            f"{display(m)} {PREDICTED[d]}" for c, m, d in CHECKS if c == v.conjecture
        )
        row: Row = {
            "conjecture": conjecture_title(v.conjecture),
            f"predicted for {noisier}": predicted,
        }
        for key in ANSWER_KEYS:
            row[key_title(*key)] = _answer_cell(v, key)
        row["paper's rule (no noise)"] = v.status
        out.append(row)
    return out


def late_rows(report: Report) -> list[Row]:
    """Per check: its prediction, each run's median in the second half, and the check's
    verdicts on the medians and on the maxima there."""
    runs = [s for s in report.summaries if s.usable and s.windows is not None]
    out = []
    for v in report.verdicts:
        for c in v.checks:
            if not any(s.maxima[c.metric].raw is not None for s in runs):
                continue
            row: Row = {"check": f"{display(c.metric)} ({PREDICTED[c.direction]} if noisier)"}
            for s in runs:
                x = s.windows.values.get((c.metric, *LATE_MEDIAN))  # type: ignore[union-attr]
                row[s.label] = MISSING if x is None else number(x.value)
            for key in (LATE_MEDIAN, LATE_MAX):
                wc = c.windows.get(key)
                row[f"verdict on {key[1]}"] = MISSING if wc is None else _check_cell(wc)
            out.append(row)
    return out


def breakeven_rows(report: Report) -> list[Row]:
    """Per run: the break-even point (first Eq. 1 LHS >= 1) or the largest LHS when it never
    comes, where the LHS comes from, and the first epoch with training accuracy above each
    threshold ("never" if it has accuracy but never crosses)."""
    out = []
    for label, ph in zip(report.sweep.labels, report.phases, strict=True):
        p, eq1 = ph.breakeven, ph.eq1
        if p is not None:
            step = f"{p.step} (epoch {number(p.epoch)})"
            lhs = number(p.value) + (" (already ≥ 1 at first measurement)" if p.at_start else "")
        elif eq1 is not None and np.isfinite(eq1.values).any():
            step, lhs = "never", f"max {number(float(np.nanmax(eq1.values)))}"
        else:
            step, lhs = MISSING, MISSING
        row: Row = {
            "run": label,
            "break-even step": step,
            "Eq. 1 LHS there": lhs,
            "LHS": eq1.source if eq1 is not None else "unavailable",
        }
        for t, c in ph.crossings.items():
            never = "never" if ph.has_accuracy else MISSING
            row[f"train acc > {t:g}: epoch"] = cell(c.epoch) if c else never
        out.append(row)
    return out


# ------------------------------------------------------------------ details
def _check_cell(wc: WindowCheck | WindowVerdict) -> str:
    reason = getattr(wc, "reason", None)
    if reason is not None and reason.code == "window_missing":
        return f"{wc.status} (n/a)"
    return status_cell(wc.status, wc.confidence)


def verdict_keys(verdicts: list[Verdict]) -> list[WindowKey]:
    """The (window, statistic) keys the verdicts have, in report order."""
    have = {k for v in verdicts for k in v.windows}
    return [(w, s) for w in WINDOWS for s in window_statistics(w, 2) if (w, s) in have]


def check_rows(verdicts: list[Verdict], keys: list[WindowKey]) -> list[Row]:
    """One row per conjecture and per check: the paper's literal rule (raw and robust maxima),
    then the noise-aware verdict of each (window, statistic) of `keys`. Cells: status
    (confidence = share of replicates in the predicted order); "(n/a)": some run has no value in
    the window."""
    out = []
    for v in verdicts:
        rows: list[tuple[str, str, str, str, dict]] = [
            (conjecture_title(v.conjecture), "all checks", v.status, MISSING, v.windows)
        ]
        for c in v.checks:
            robust = c.robust.status if c.robust is not None else MISSING
            rows.append(("", f"max {display(c.metric)}", c.status, robust, c.windows))
        for conj, check, literal, robust, windows in rows:
            row: Row = {
                "conjecture": conj,
                "check": check,
                "paper's rule": literal,
                "on robust maxima": robust,
            }
            for key in keys:
                x = windows.get(key)
                row[key_title(*key)] = MISSING if x is None else _check_cell(x)
            out.append(row)
    return out


def statistic_rows(summaries: list[RunSummary], window: int | None = None) -> list[Row]:
    """Per run and metric: its measurements (after step 0), its break-even step, and per window
    and statistic the value (step) [95 % interval]."""
    out = []
    for s in summaries:
        if s.windows is None:
            continue
        be = s.windows.breakeven
        for m in CONJECTURE_METRICS:
            whole = s.windows.values.get((m, "whole", "max"))
            if whole is None:
                continue
            row: Row = {
                "run": s.label,
                "metric": display(m),
                "measurements": whole.n,
                "break-even step": be.step if be is not None else MISSING,
            }
            for w in WINDOWS:
                for stat in window_statistics(w, window):
                    row[key_title(w, stat)] = _statistic_cell(s.windows.values.get((m, w, stat)))
            out.append(row)
    return out


def hessian_sample_cell(run: Run) -> str:
    """The examples of the Hessian sample: the fixed size, or for an adaptive sample
    (--hessian_target_error) the sizes the measurements ended with and the target."""
    _, _, sizes = run.series(names.HESSIAN_SAMPLE_SIZE)
    sizes = sizes[np.isfinite(sizes)]
    if not sizes.size:
        return cell(run.metadata.get("hessian_sample_size"))
    lo, hi = int(sizes.min()), int(sizes.max())
    config = run.metadata.get("config")
    target = config.get("hessian_target_error") if isinstance(config, dict) else None
    goal = f", target {target:.3g}" if isinstance(target, int | float) else ""
    return f"{lo}–{hi} (adaptive{goal})" if hi > lo else f"{lo} (adaptive{goal})"


def mode_keys(runs: list[Run]) -> list[str]:
    """The metadata keys saying how the runs were measured (names ending in `MODE_SUFFIXES`:
    ``bn_mode`` and the like), in first-seen order."""
    keys: list[str] = []
    for run in runs:
        for k in run.metadata:
            if isinstance(k, str) and k.endswith(MODE_SUFFIXES) and k not in keys:
                keys.append(k)
    return keys


def _mode_cell(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(map(cell, v)) or "none"
    if isinstance(v, dict):
        return ", ".join(f"{k}={cell(x)}" for k, x in v.items()) or "none"
    return cell(v)


def run_rows(report: Report) -> list[Row]:
    """One row per run: directory, model and data, η, S, K_M, Hessian sample, seed, how it was
    measured (`mode_keys`), status, last step."""
    modes = mode_keys(report.sweep.runs)
    rows = []
    for label, run in zip(report.sweep.labels, report.sweep.runs, strict=True):
        md = run.metadata
        row: Row = {
            "run": label,
            "directory": str(run.path),
            "model / data": f"{cell(md.get('model'))} / {cell(md.get('dataset'))}",
            "lr": cell(md.get("lr")),
            "S": cell(md.get("batch_size")),
            "K_M": cell(md.get("K_M")),
            "Hessian sample": hessian_sample_cell(run),
            "seed": cell(md.get("seed")),
        }
        row.update({k: _mode_cell(md.get(k)) for k in modes})
        row["status"] = run.status
        row["stop reason"] = run.stop_reason or MISSING
        row["last step"] = cell(run.last_step())
        rows.append(row)
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
            "sweep value": cell(s.value),
            "lr": cell(s.lr),
            "batch size": cell(s.batch_size),
            "status": s.status + (" (excluded)" if s.excluded else ""),
        }
        for m in CONJECTURE_METRICS:
            row[f"max {display(m)}"] = _max_cell(s.maxima[m])
            row[f"robust max {display(m)}"] = _max_cell(s.maxima[m], "robust")
            if _smoothed(window):
                row[f"max {display(m)} smoothed"] = _max_cell(s.maxima[m], "smoothed")
        out.append(row)
    return out


# ------------------------------------------------------------------ CSV
def _check_verdicts(verdicts: list[Verdict]) -> dict[str, dict[WindowKey, WindowCheck]]:
    return {c.metric: c.windows for v in verdicts for c in v.checks}


def conjectures_csv(
    summaries: list[RunSummary], verdicts: list[Verdict], window: int | None = None
) -> str:
    """conjectures.csv: one row per run: the maxima and where they are attained, the second
    half's maximum and median (with its interval), and beside each metric the verdicts of its
    check (the same on every row: they compare the runs) on the whole trajectory and the
    second half, each with its confidence."""
    checks = _check_verdicts(verdicts)
    header = ["run", "dir", "sweep_value", "lr", "batch_size", "status", "excluded", "stop_reason"]
    for m in CONJECTURE_METRICS:
        header += [f"max_{m}", f"max_{m}_step", f"max_{m}_epoch", f"robust_max_{m}"]
        header += [f"robust_max_{m}_step"]
        if _smoothed(window):
            header += [f"max_{m}_smoothed", f"max_{m}_smoothed_step"]
        header += [f"late_max_{m}", f"late_max_{m}_step", f"late_median_{m}"]
        header += [f"late_median_{m}_lo", f"late_median_{m}_hi", f"late_n_{m}"]
        for w, stat in ANSWER_KEYS:
            tag = f"{w}_{stat.replace(' ', '_')}"
            header += [f"verdict_{tag}_{m}", f"confidence_{tag}_{m}"]
    rows = []
    for s in summaries:
        row: list[Any] = [s.label, str(s.run.path), s.value, s.lr, s.batch_size, s.status]
        row += [exclusion(s) if s.excluded else "", s.stop_reason or ""]
        values = s.windows.values if s.windows is not None else {}
        for m in CONJECTURE_METRICS:
            raw, robust = s.maxima[m].raw, s.maxima[m].robust
            row += [None] * 3 if raw is None else [raw.value, raw.step, raw.epoch]
            row += [None] * 2 if robust is None else [robust.value, robust.step]
            if _smoothed(window):
                sm = s.maxima[m].smoothed
                row += [None] * 2 if sm is None else [sm.value, sm.step]
            late, med = values.get((m, *LATE_MAX)), values.get((m, *LATE_MEDIAN))
            row += [None] * 2 if late is None else [late.value, late.step]
            row += [None] * 4 if med is None else [med.value, med.lo, med.hi, med.n]
            for key in ANSWER_KEYS:
                wc = checks.get(m, {}).get(key)
                row += [None] * 2 if wc is None else [wc.status, wc.confidence]
        rows.append(row)
    return _csv(header, rows)


def _statistic_records(summaries: list[RunSummary]) -> Iterator[Row]:
    for s in summaries:
        if s.windows is None:
            continue
        be, late = s.windows.breakeven, s.windows.late
        for (metric, win, stat), x in s.windows.values.items():
            rec: Row = {"record": "statistic", "run": s.label, "metric": metric, "window": win}
            rec.update(statistic=stat, breakeven_step=None if be is None else be.step)
            rec.update(late_start=late)
            if x is not None:
                rec.update(value=x.value, step=x.step, lo=x.lo, hi=x.hi, n=x.n)
                rec.update(stderr_used=x.noisy)
            yield rec


def _verdict_record(
    record: str, conjecture: int, key: WindowKey, x: WindowVerdict | WindowCheck
) -> Row:
    return {
        "record": record,
        "conjecture": conjecture,
        "window": key[0],
        "statistic": key[1],
        "status": x.status,
        "confidence": x.confidence,
    }


def _verdict_records(verdicts: list[Verdict]) -> Iterator[Row]:
    for v in verdicts:
        for key, wv in v.windows.items():
            yield _verdict_record("conjecture", v.conjecture, key, wv)
        for c in v.checks:
            for key, wc in c.windows.items():
                rec = _verdict_record("check", v.conjecture, key, wc)
                yield rec | {"metric": c.metric, "seed_share": wc.seed_share}


def conjectures_windows_csv(summaries: list[RunSummary], verdicts: list[Verdict]) -> str:
    """conjectures_windows.csv: per run/metric/window/statistic the value with its interval and
    number of measurements (record "statistic"), then per conjecture and check the noise-aware
    verdict."""
    records = [*_statistic_records(summaries), *_verdict_records(verdicts)]
    return _csv(WINDOWS_CSV_FIELDS, ([r.get(k) for k in WINDOWS_CSV_FIELDS] for r in records))

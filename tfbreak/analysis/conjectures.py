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

These literal verdicts ignore measurement noise. Alongside them, every check is repeated in three
windows — the whole trajectory, before and after each run's break-even point — with bootstrap
intervals over measurement noise (standard-error series) and seeds, and a verdict with a
confidence (holds / violated / inconclusive, see `tfbreak.analysis.noise` for the exact rules):
`Check.windows`, `Verdict.windows`, keyed by (window, smoothed).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tfbreak.analysis import noise
from tfbreak.analysis.breakeven import detect_break_even
from tfbreak.analysis.noise import WINDOW_TITLE, WINDOWS, RunWindows, ValueMaximum, Window
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
    windows: RunWindows | None = None  # noisy maxima per (metric, window, smoothed)
    seed: Any = None

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
    windows: dict[tuple[Window, bool], WindowCheck] = field(default_factory=dict)


@dataclass
class WindowCheck:
    """Noise-aware verdict of one check in one window (raw or smoothed maxima)."""

    window: Window
    smoothed: bool
    status: Status
    sentence: str
    confidence: float | None = None  # share of bootstrap replicates in the predicted order
    seed_share: float | None = None  # share of seed combinations in the predicted order
    values: list[ValueMaximum] = field(default_factory=list)  # noisiest first
    pair_shares: dict[tuple[Any, Any], float] = field(default_factory=dict)
    joint: np.ndarray | None = None  # (B,) replicate-wise "every pair in order"


@dataclass
class WindowVerdict:
    """A conjecture's noise-aware verdict in one window."""

    window: Window
    smoothed: bool
    status: Status
    confidence: float | None  # share of replicates with all its decided checks in order


@dataclass
class Verdict:
    """Overall verdict on one conjecture, with its checks and notes."""

    conjecture: int
    status: Status
    checks: list[Check]
    notes: list[str]
    windows: dict[tuple[Window, bool], WindowVerdict] = field(default_factory=dict)


def summarize_run(
    run: Run,
    label: str,
    value: Any,
    window: int | None = None,
    mode: Mode = "trailing",
    *,
    replicates: int = noise.DEFAULT_REPLICATES,
    rng: np.random.Generator | None = None,
) -> RunSummary:
    """Maxima (raw and smoothed) of the conjecture metrics for one run, and their noisy maxima
    with bootstrap replicates in the three windows (split at the run's break-even point)."""
    series = {m: get_series(run, m) for m in TABLE_METRICS}
    mx = {m: maxima(*series[m], window=window, mode=mode) for m in TABLE_METRICS}
    point, _, why = detect_break_even(run)
    windows = noise.run_windows(
        run,
        series,
        point,
        None if point is not None else (why or "no break-even point detected"),
        window=window,
        mode=mode,
        replicates=replicates,
        rng=rng,
    )
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
        windows=windows,
        seed=run.metadata.get("seed"),
    )


def summarize_sweep(
    sweep: Sweep,
    window: int | None = None,
    mode: Mode = "trailing",
    *,
    replicates: int = noise.DEFAULT_REPLICATES,
    seed: int = 0,
) -> list[RunSummary]:
    """`summarize_run` for every run of the sweep, in sweep order (bootstrap seeded by `seed`
    and the run's position: reports are reproducible)."""
    return [
        summarize_run(
            r,
            sweep.label(r),
            sweep.value(r),
            window,
            mode,
            replicates=replicates,
            rng=np.random.default_rng([seed, i]),
        )
        for i, r in enumerate(sweep.runs)
    ]


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


def _interval(v: ValueMaximum) -> str:
    if v.lo == v.hi:
        return ""
    return f" [{_fmt(v.lo)}, {_fmt(v.hi)}]"


def _window_check(
    metric: str,
    direction: int,
    axis: str,
    usable: list[RunSummary],
    w: Window,
    smoothed: bool,
    rng: np.random.Generator,
) -> WindowCheck:
    """Noise-aware check of one metric in one window (see `tfbreak.analysis.noise`)."""
    sym = AXIS_SYMBOL.get(axis, axis)
    what = f"{WINDOW_TITLE[w]}: max {display(metric)}" + (" (smoothed)" if smoothed else "")
    groups: dict[Any, list[RunSummary]] = {}
    missing: list[str] = []
    for s in usable:
        if s.windows is None or s.maxima[metric].raw is None:
            continue  # the run never measured the metric: not part of this check
        if s.windows.maxima.get((metric, w, smoothed)) is None:
            missing.append(f"{s.label}: {s.windows.reasons.get((metric, w, smoothed), 'n/a')}")
            continue
        groups.setdefault(s.value, []).append(s)
    if missing:
        return WindowCheck(w, smoothed, "inconclusive", f"{what}: {'; '.join(missing)}")
    if len(groups) < 2:
        have = ", ".join(f"{sym}={_val(v)}" for v in groups) or "none"
        return WindowCheck(
            w, smoothed, "inconclusive", f"{what}: fewer than 2 usable sweep values (have: {have})"
        )
    values = []
    for v in _noise_order(axis, list(groups)):
        runs = groups[v]
        maxima_ = [s.windows.maxima[(metric, w, smoothed)] for s in runs]  # type: ignore[union-attr]
        values.append(noise.value_maximum(v, [s.label for s in runs], maxima_, rng))
    o = noise.ordering(values, direction)

    def item(v: ValueMaximum) -> str:
        n = len(v.maxima)
        return f"{sym}={_val(v.value)} → {_fmt(v.mean)}{_interval(v)}" + (
            f" (mean of {n} seeds)" if n > 1 else ""
        )

    chain = f"{what}: " + item(values[0])
    for a, b in zip(values, values[1:], strict=False):
        rel = "<" if a.mean < b.mean else (">" if a.mean > b.mean else "=")
        chain += f" {rel} {item(b)}"
    conf = f"confidence {o.confidence:.2f}"
    if o.seed_share is not None:
        conf += f"; seed combinations in order {o.seed_share:.2f}"
    if not o.replicated_noise:
        conf += "; no standard errors and one seed per value: no noise model"
    if o.status == "violated":
        worst = min(o.pair_shares, key=o.pair_shares.get)  # type: ignore[arg-type]
        conf += (
            f"; {sym}={_val(worst[0])} vs {sym}={_val(worst[1])} in order in "
            f"{o.pair_shares[worst]:.2f} of replicates"
        )
    return WindowCheck(
        w,
        smoothed,
        o.status,
        f"{chain}: {o.status} ({conf})",
        o.confidence,
        o.seed_share,
        values,
        o.pair_shares,
        o.joint,
    )


def _combine(checks: list[Check], key: tuple[Window, bool]) -> WindowVerdict:
    wcs = [c.windows[key] for c in checks if key in c.windows]
    statuses = [c.status for c in wcs]
    if not wcs:
        overall: Status = "inconclusive"
    elif "violated" in statuses:
        overall = "violated"
    elif all(s == "holds" for s in statuses) and len(wcs) == len(checks):
        overall = "holds"
    else:
        overall = "inconclusive"
    joints = [c.joint for c in wcs if c.joint is not None]
    conf = float(np.mean(np.logical_and.reduce(joints))) if joints else None
    return WindowVerdict(key[0], key[1], overall, conf)


def check_conjectures(
    summaries: list[RunSummary],
    sweep: Sweep,
    window: int | None = None,
    *,
    seed: int = 0,
) -> list[Verdict]:
    """Verdicts on Conjectures 1 and 2 for the sweep (see module doc for the rules): the literal
    ones (`Check.status`, `Verdict.status`) and the noise-aware ones per window
    (`Check.windows`, `Verdict.windows`)."""
    rng = np.random.default_rng([seed, 7919])
    kinds = [False, True] if window and window > 1 else [False]
    keys = [(w, k) for k in kinds for w in WINDOWS]
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

            def inconclusive(reason: str, metric: str = metric, conj: int = conj) -> Check:
                c = Check(conj, metric, "inconclusive", reason)
                for w, k in keys:
                    tail = reason.split(": ", 1)[-1]
                    c.windows[(w, k)] = WindowCheck(
                        w, k, "inconclusive", f"{WINDOW_TITLE[w]}: {display(metric)}: {tail}"
                    )
                return c

            if global_reason:
                checks.append(inconclusive(f"{what}: {global_reason}"))
                continue
            if metric in K_METRICS and set(sweep.varying_measurement) & {"K_M", "K_L"}:
                checks.append(
                    inconclusive(f"{what}: K was estimated with different K_M/K_L across runs")
                )
                continue
            if not any(s.maxima[metric].raw is not None for s in summaries):
                checks.append(inconclusive(f"{what}: metric missing"))
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
            for w, k in keys:
                check.windows[(w, k)] = _window_check(
                    metric, direction, sweep.axis, usable, w, k, rng
                )
            checks.append(check)
        statuses = [c.status for c in checks]
        if "violated" in statuses:
            overall: Status = "violated"
        elif all(s == "holds" for s in statuses):
            overall = "holds"
        else:
            overall = "inconclusive"
        verdicts.append(
            Verdict(conj, overall, checks, notes, {key: _combine(checks, key) for key in keys})
        )
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


CONJECTURE_NAME = {1: "variance reduction", 2: "pre-conditioning"}
_PREDICTION = {
    -1: "predicted smaller for noisier SGD",
    +1: "predicted larger for noisier SGD",
}


def _cell(status: Status, confidence: float | None) -> str:
    return status + (f" ({confidence:.2f})" if confidence is not None else "")


def window_verdict_rows(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    """Table rows: one per conjecture and check, literal verdict then the three windows, raw and
    smoothed maxima. Cells: status (confidence = share of replicates in the predicted order)."""
    out = []
    for v in verdicts:
        kinds = sorted({k for _, k in v.windows})
        for smoothed in kinds:
            row: dict[str, Any] = {
                "conjecture": f"{v.conjecture} ({CONJECTURE_NAME[v.conjecture]})",
                "check": "all checks",
                "maxima": "smoothed" if smoothed else "raw",
                "paper (literal)": v.status if not smoothed else "—",
            }
            for w in WINDOWS:
                wv = v.windows[(w, smoothed)]
                row[WINDOW_TITLE[w]] = _cell(wv.status, wv.confidence)
            out.append(row)
            for c in v.checks:
                literal = c.status if not smoothed else (c.smoothed_status or "—")
                row = {
                    "conjecture": "",
                    "check": f"max {display(c.metric)}",
                    "maxima": "smoothed" if smoothed else "raw",
                    "paper (literal)": literal,
                }
                for w in WINDOWS:
                    wc = c.windows.get((w, smoothed))
                    row[WINDOW_TITLE[w]] = "—" if wc is None else _cell(wc.status, wc.confidence)
                out.append(row)
    return out


def _where_whole_max(
    summaries: list[RunSummary], metric: str, smoothed: bool
) -> tuple[list[str], list[str], list[str]]:
    """Labels of the usable runs whose whole-trajectory maximum is attained (before, at/after)
    their break-even step, and 'label (step s, break-even b)' details."""
    before, after, detail = [], [], []
    for s in summaries:
        if not s.usable or s.windows is None or s.windows.breakeven is None:
            continue
        m = s.windows.maxima.get((metric, "whole", smoothed))
        if m is None:
            continue
        be = s.windows.breakeven.step
        (before if m.step < be else after).append(s.label)
        detail.append(f"{s.label}: step {m.step}, break-even {be}")
    return before, after, detail


def explain(verdict: Verdict, summaries: list[RunSummary], smoothed: bool = False) -> str:
    """One paragraph: what the conjecture's checks compared, the three window verdicts, and why
    the windows differ when they do."""
    metrics = [
        (c.metric, d)
        for conj, c_metric, d in CHECKS
        for c in verdict.checks
        if conj == verdict.conjecture and c.metric == c_metric
    ]
    compared = "; ".join(f"max {display(m)} ({_PREDICTION[d]})" for m, d in metrics)
    noisy = sorted(
        {
            display(m)
            for s in summaries
            if s.windows is not None
            for m, has in s.windows.has_stderr.items()
            if has and m in dict(metrics)
        }
    )
    seeds = any(
        len(wc.values) and any(len(v.maxima) > 1 for v in wc.values)
        for c in verdict.checks
        for wc in c.windows.values()
    )
    text = (
        f"Conjecture {verdict.conjecture} ({CONJECTURE_NAME[verdict.conjecture]}) compares, "
        f"across the sweep, {compared}"
        + (" on smoothed series" if smoothed else "")
        + ". Intervals come from a bootstrap over "
        + (
            f"measurement noise ({', '.join(noisy)} have standard errors)"
            if noisy
            else "measurement noise — but no run has standard errors for these metrics"
        )
        + (" and over seeds" if seeds else "")
        + ". The paper's literal rule (raw maxima, strict ordering) gives: "
        + f"{verdict.status}. Noise-aware: "
        + "; ".join(
            f"{WINDOW_TITLE[w]} {_cell(wv.status, wv.confidence)}"
            for w in WINDOWS
            if (wv := verdict.windows.get((w, smoothed))) is not None
        )
        + "."
    )
    reasons = []
    for c in verdict.checks:
        st = {w: c.windows[(w, smoothed)].status for w in WINDOWS if (w, smoothed) in c.windows}
        if len(set(st.values())) <= 1:
            continue
        splitless = [
            s.label
            for s in summaries
            if s.usable and s.windows is not None and s.windows.breakeven is None
        ]
        if splitless and st.get("before") == st.get("after") == "inconclusive":
            reasons.append(
                f"before/after are inconclusive for max {display(c.metric)} because no "
                f"break-even point was detected for {', '.join(splitless)}"
            )
            continue
        before, after, detail = _where_whole_max(summaries, c.metric, smoothed)
        head = (
            f"max {display(c.metric)} is {st.get('whole')} on the whole trajectory, "
            f"{st.get('before')} before and {st.get('after')} after break-even"
        )
        if before and not after:
            why = (
                "every run attains its whole-trajectory maximum before its break-even point, so "
                "the paper's whole-trajectory comparison is the early-phase one; the ordering "
                "established after break-even is not seen by it"
            )
        elif after and not before:
            why = (
                "every run attains its whole-trajectory maximum at or after its break-even "
                "point, so the whole-trajectory comparison is the late-phase one"
            )
        else:
            why = (
                f"the whole-trajectory maximum is early (before break-even) for "
                f"{', '.join(before) or 'no run'} and late for {', '.join(after) or 'no run'}, "
                "so the whole-trajectory comparison mixes the two phases"
            )
        reasons.append(f"{head}: {why} ({'; '.join(detail)})")
    if reasons:
        text += " The windows differ: " + ". ".join(reasons) + "."
    return text


def window_maxima_rows(summaries: list[RunSummary], window: int | None = None) -> list[dict]:
    """Per run and metric: break-even step and, per window, max (step) [95 % interval]."""
    out = []
    kinds = [False, True] if window and window > 1 else [False]
    for s in summaries:
        if s.windows is None:
            continue
        be = s.windows.breakeven
        for m in TABLE_METRICS:
            if s.maxima[m].raw is None:
                continue
            row: dict[str, Any] = {
                "run": s.label,
                "metric": display(m),
                "stderr": "yes" if s.windows.has_stderr.get(m) else "no",
                "break-even step": be.step if be is not None else "—",
            }
            for smoothed in kinds:
                for w in WINDOWS:
                    x = s.windows.maxima.get((m, w, smoothed))
                    key = WINDOW_TITLE[w] + (" (smoothed)" if smoothed else "")
                    if x is None:
                        row[key] = "—"
                    else:
                        iv = "" if x.lo == x.hi else f" [{_fmt(x.lo)}, {_fmt(x.hi)}]"
                        row[key] = f"{_fmt(x.value)} (step {x.step}){iv}"
            out.append(row)
    return out


def window_csv(summaries: list[RunSummary], verdicts: list[Verdict]) -> str:
    """Long CSV: per run/metric/window/kind maxima with intervals, then per check verdicts."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
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
        ]
    )
    for s in summaries:
        if s.windows is None:
            continue
        be = s.windows.breakeven
        for (m, win, sm), x in s.windows.maxima.items():
            w.writerow(
                [
                    "maximum",
                    s.label,
                    "",
                    m,
                    win,
                    sm,
                    "" if x is None else repr(x.value),
                    "" if x is None else x.step,
                    "" if x is None else repr(x.lo),
                    "" if x is None else repr(x.hi),
                    "" if x is None else x.noisy,
                    "",
                    "",
                    "",
                    "" if be is None else be.step,
                ]
            )
    for v in verdicts:
        for (win, sm), wv in v.windows.items():
            w.writerow(
                [
                    "conjecture",
                    "",
                    v.conjecture,
                    "",
                    win,
                    sm,
                    "",
                    "",
                    "",
                    "",
                    "",
                    wv.status,
                    "" if wv.confidence is None else repr(wv.confidence),
                    "",
                    "",
                ]
            )
        for c in v.checks:
            for (win, sm), wc in c.windows.items():
                w.writerow(
                    [
                        "check",
                        "",
                        v.conjecture,
                        c.metric,
                        win,
                        sm,
                        "",
                        "",
                        "",
                        "",
                        "",
                        wc.status,
                        "" if wc.confidence is None else repr(wc.confidence),
                        "" if wc.seed_share is None else repr(wc.seed_share),
                        "",
                    ]
                )
    return buf.getvalue()

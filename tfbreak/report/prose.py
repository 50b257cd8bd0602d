"""The report's sentences: verdicts, reasons, notes, explanations (paper, Sec. 3 and Sec. 4.2).

Every sentence the report writes about the conjectures is made here from the structured verdicts
of `tfbreak.analysis.verdicts`: a conjecture's headline (`headline`, the one sentence to quote
wherever the verdict is summarised), a literal check as the chain of maxima from the noisiest SGD
("max λ1_K: lr=0.1 → 0.68 < lr=0.01 → 3.3: holds"), a noise-aware window check with intervals and
confidence, why a check is inconclusive, the notes, the paragraph explaining why the windows
differ, and the report's fixed paragraphs and messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfbreak.analysis.noise import WINDOW_TITLE, WINDOWS, ValueMaximum
from tfbreak.analysis.series import display
from tfbreak.analysis.summary import EXCLUDED_STATUSES, RunSummary, peak_phase, without_break_even
from tfbreak.analysis.verdicts import (
    Check,
    Comparison,
    Note,
    Reason,
    ValueMean,
    Verdict,
    WindowCheck,
)
from tfbreak.report.build import Report, ReportOptions
from tfbreak.report.formats import (
    CONJECTURE_NAME,
    axis_value,
    exclusion,
    interval,
    number,
    status_cell,
)

PREDICTION = {-1: "predicted smaller for noisier SGD", +1: "predicted larger for noisier SGD"}
SINGLE_RUN = "single run: the conjectures compare runs, so every verdict is inconclusive"
UMAP_DISABLED = "UMAP (Figs. 1, 8): disabled (--no-umap)"
EQ1_ASSUMPTIONS = (
    "Eq. 1 assumes the loss is quadratic along e1_H (Assumption 1); s² is measured on the "
    "Hessian sample; N, S from metadata. Recomputed values use tfbreak.analysis.breakeven.eq1_lhs "
    "from hessian/lambda_1, breakeven/s2 and lr."
)


WHOLE = ("whole", False)


def headline(verdict: Verdict) -> str:
    """A conjecture's verdict in one sentence, the one to quote wherever it is summarised (report,
    README): the noise-aware verdict on the whole trajectory (raw maxima after step 0), with each
    check's status and the share of bootstrap replicates in the predicted order, e.g.
    "Conjecture 1 (variance reduction): holds (max λ1_H: holds, 1.00; max λ1_K: holds, 0.96)"."""
    name = f"Conjecture {verdict.conjecture} ({CONJECTURE_NAME[verdict.conjecture]})"
    whole = verdict.windows.get(WHOLE)
    if whole is None:
        return f"{name}: {verdict.status}"
    parts = []
    for check in verdict.checks:
        wc = check.windows.get(WHOLE)
        reason = check.precondition or (wc.reason if wc is not None else None)
        if reason is not None:
            parts.append(f"max {display(check.metric)}: {reason_text(reason)}")
        elif wc is not None:
            parts.append(f"max {display(check.metric)}: {wc.status}, {wc.confidence:.2f}")
    return f"{name}: {whole.status} ({'; '.join(parts)})"


def reason_text(reason: Reason) -> str:
    """Why a check is inconclusive."""
    if reason.code == "single_run":
        return "a single run: nothing to compare"
    if reason.code == "varies_other":
        return f"the sweep varies {', '.join(reason.keys)}; the conjectures concern η or S only"
    if reason.code == "no_eta_or_s":
        return "the runs do not differ in η or S"
    if reason.code == "also_varies":
        return f"besides {reason.axis}, the sweep also varies {', '.join(reason.keys)}"
    if reason.code == "k_settings_differ":
        return "K was estimated with different K_M/K_L across runs"
    if reason.code == "metric_missing":
        return "metric missing"
    if reason.code == "too_few_values":
        have = ", ".join(axis_value(reason.axis, v) for v in reason.values) or "none"
        return f"fewer than 2 usable sweep values (have: {have})"
    return "; ".join(f"{label}: {why}" for label, why in reason.runs)  # window_missing


def note_text(note: Note) -> str:
    """A note under the verdicts: an excluded run, a partial run, or why all are inconclusive."""
    if note.code == "all_inconclusive":
        assert note.reason is not None
        return f"all checks inconclusive: {reason_text(note.reason)}"
    assert note.run is not None
    if note.code == "excluded":
        return f"excluded {note.run.label} from the verdicts ({exclusion(note.run)})"
    return f"{note.run.label} is {note.run.status}: its maxima cover only the measured part"


def _chain(items: Sequence[tuple[str, float]]) -> str:
    """Items (text, value) joined by how consecutive values compare: a → 1 < b → 2 = c → 2."""
    text = items[0][0]
    for (_, a), (b_text, b) in zip(items, items[1:], strict=False):
        rel = "<" if a < b else (">" if a > b else "=")
        text += f" {rel} {b_text}"
    return text


def _mean_item(axis: str | None, v: ValueMean) -> tuple[str, float]:
    runs = f" (mean of {v.runs} runs)" if v.runs > 1 else ""
    return f"{axis_value(axis, v.value)} → {number(v.mean)}{runs}", v.mean


def _literal(check: Check, c: Comparison) -> str:
    if c.reason is not None:
        return reason_text(c.reason)
    chain = _chain([_mean_item(check.axis, v) for v in c.values])
    if c.status == "violated":
        pairs = "; ".join(
            f"{axis_value(check.axis, a)} vs {axis_value(check.axis, b)}"
            for a, b in c.violated_pairs
        )
        return f"{chain}: violated (pairs out of order: {pairs})"
    if c.tied_pairs:
        pairs = "; ".join(
            f"{axis_value(check.axis, a)} vs {axis_value(check.axis, b)}" for a, b in c.tied_pairs
        )
        return f"{chain}: inconclusive (tied: {pairs})"
    return f"{chain}: {c.status}"


def check_sentence(check: Check) -> str:
    """The literal check: maxima from the noisiest SGD and the verdict; the verdicts on robust
    and (when a window was given) smoothed maxima in brackets."""
    what = f"max {display(check.metric)}"
    if check.precondition is not None:
        return f"{what}: {reason_text(check.precondition)}"
    text = f"{what}: {_literal(check, check.literal)}"
    if check.robust is not None:
        text += f" [on robust maxima: {check.robust.status}]"
    if check.smoothed is not None:
        text += f" [on smoothed maxima, window {check.smoothing_window}: {check.smoothed.status}]"
    return text


def _value_item(axis: str | None, v: ValueMaximum) -> tuple[str, float]:
    n = len(v.maxima)
    seeds = f" (mean of {n} seeds)" if n > 1 else ""
    return f"{axis_value(axis, v.value)} → {number(v.mean)}{interval(v.lo, v.hi)}{seeds}", v.mean


def _confidence(axis: str | None, wc: WindowCheck) -> str:
    text = f"confidence {wc.confidence:.2f}"
    if wc.seed_share is not None:
        text += f"; seed combinations in order {wc.seed_share:.2f}"
    if not wc.replicated_noise:
        text += "; no standard errors and one seed per value: no noise model"
    worst = wc.worst_pair
    if wc.status == "violated" and worst is not None:
        text += (
            f"; {axis_value(axis, worst[0])} vs {axis_value(axis, worst[1])} in order in "
            f"{wc.pair_shares[worst]:.2f} of replicates"
        )
    return text


def window_sentence(check: Check, wc: WindowCheck) -> str:
    """A noise-aware check in one window: maxima with intervals from the noisiest SGD, the
    verdict and its confidence, or why it is inconclusive."""
    title = WINDOW_TITLE[wc.window]
    if check.precondition is not None:
        return f"{title}: {display(check.metric)}: {reason_text(check.precondition)}"
    what = f"{title}: max {display(check.metric)}" + (" (smoothed)" if wc.smoothed else "")
    if wc.reason is not None:
        return f"{what}: {reason_text(wc.reason)}"
    chain = _chain([_value_item(check.axis, v) for v in wc.values])
    return f"{what}: {chain}: {wc.status} ({_confidence(check.axis, wc)})"


def window_sentences(verdicts: list[Verdict]) -> list[str]:
    """Every check's window sentences: raw maxima first, whole trajectory first."""
    return [
        window_sentence(c, c.windows[k])
        for v in verdicts
        for c in v.checks
        for k in sorted(c.windows, key=lambda k: (k[1], k[0] != "whole"))
    ]


def _noise_sources(verdict: Verdict, summaries: list[RunSummary]) -> str:
    metrics = {c.metric for c in verdict.checks}
    noisy = sorted(
        {
            display(m)
            for s in summaries
            if s.windows is not None
            for m, has in s.windows.has_stderr.items()
            if has and m in metrics
        }
    )
    seeds = any(
        len(v.maxima) > 1 for c in verdict.checks for wc in c.windows.values() for v in wc.values
    )
    text = (
        f"measurement noise ({', '.join(noisy)} have standard errors)"
        if noisy
        else "measurement noise — but no run has standard errors for these metrics"
    )
    return text + (" and over seeds" if seeds else "")


def _phase_why(check: Check, summaries: list[RunSummary], smoothed: bool) -> str:
    phase = peak_phase(summaries, check.metric, smoothed)
    if phase.before and not phase.after:
        why = (
            "every run attains its whole-trajectory maximum before its break-even point, so "
            "the paper's whole-trajectory comparison is the early-phase one; the ordering "
            "established after break-even is not seen by it"
        )
    elif phase.after and not phase.before:
        why = (
            "every run attains its whole-trajectory maximum at or after its break-even "
            "point, so the whole-trajectory comparison is the late-phase one"
        )
    else:
        why = (
            f"the whole-trajectory maximum is early (before break-even) for "
            f"{', '.join(phase.before) or 'no run'} and late for "
            f"{', '.join(phase.after) or 'no run'}, so the whole-trajectory comparison mixes "
            "the two phases"
        )
    steps = "; ".join(f"{label}: step {step}, break-even {be}" for label, step, be in phase.steps)
    return f"{why} ({steps})"


def _windows_differ(check: Check, summaries: list[RunSummary], smoothed: bool) -> str | None:
    """Why a check's verdict differs between windows, or None if it does not."""
    st = {w: check.windows[(w, smoothed)].status for w in WINDOWS if (w, smoothed) in check.windows}
    if len(set(st.values())) <= 1:
        return None
    what = f"max {display(check.metric)}"
    splitless = without_break_even(summaries)
    if splitless and st.get("before") == st.get("after") == "inconclusive":
        return (
            f"before/after are inconclusive for {what} because no break-even point was "
            f"detected for {', '.join(splitless)}"
        )
    head = (
        f"{what} is {st.get('whole')} on the whole trajectory, "
        f"{st.get('before')} before and {st.get('after')} after break-even"
    )
    return f"{head}: {_phase_why(check, summaries, smoothed)}"


def explain(verdict: Verdict, summaries: list[RunSummary], smoothed: bool = False) -> str:
    """One paragraph: what the conjecture's checks compare, the three window verdicts, and why
    the windows differ when they do."""
    compared = "; ".join(
        f"max {display(c.metric)} ({PREDICTION[c.direction]})" for c in verdict.checks
    )
    windows = "; ".join(
        f"{WINDOW_TITLE[w]} {status_cell(wv.status, wv.confidence)}"
        for w in WINDOWS
        if (wv := verdict.windows.get((w, smoothed))) is not None
    )
    text = (
        f"Conjecture {verdict.conjecture} ({CONJECTURE_NAME[verdict.conjecture]}) compares, "
        f"across the sweep, {compared}{' on smoothed series' if smoothed else ''}. "
        f"Intervals come from a bootstrap over {_noise_sources(verdict, summaries)}. "
        f"The paper's literal rule (raw maxima, strict ordering) gives: {verdict.status}. "
        f"Noise-aware: {windows}."
    )
    reasons = [r for c in verdict.checks if (r := _windows_differ(c, summaries, smoothed))]
    if reasons:
        text += " The windows differ: " + ". ".join(reasons) + "."
    return text


def generated(report: Report) -> str:
    """The opening line: when, from how many runs, what the sweep varies, the options."""
    o, sweep = report.options, report.sweep
    return (
        f"Generated {report.generated.isoformat(timespec='seconds')} from "
        f"{len(sweep.runs)} run(s); sweep axis: {sweep.axis or 'none'}"
        + (f"; varies {', '.join(sweep.varying)}" if sweep.varying else "")
        + (f"; smoothing: {o.mode} moving average, window {o.window}" if o.window else "")
        + f"; accuracy thresholds: {', '.join(f'{t:g}' for t in o.thresholds)}."
    )


def maxima_note(options: ReportOptions) -> str:
    """What the headlines, the literal checks and the conjecture table's maxima are."""
    return (
        "Headlines: the noise-aware verdict on the whole trajectory, each check with the share of "
        "bootstrap replicates that order it as predicted (see below). Indented: the paper's "
        "literal rule (raw maxima, strict order; a tie is inconclusive, never a violation), in "
        "brackets the same rule on robust maxima (of the 3-point running median, which one "
        "outlying measurement cannot make). Every maximum leaves out step 0: the initial point "
        "is the same for every η and S (runs of a seed share it), so it cannot tell them apart. "
        "Maxima are over raw measurements; the step where each is attained is in brackets"
        + (
            f"; smoothed columns use a {options.mode} moving average of {options.window}"
            if options.window
            else ""
        )
        + ". Per-run numbers: conjectures.csv."
    )


def noise_method(replicates: int) -> str:
    """How the noise-aware verdicts are made (`tfbreak.analysis.noise`)."""
    return (
        "Each maximum is bootstrapped over measurement noise (every measurement re-drawn from "
        "N(value, stderr²) where standard errors exist: jackknife errors of the K statistics "
        "over the L gradients, the sampling error of the Hessian sample and the Ritz residual "
        "for λ1_H, added in quadrature) and, for sweep values with several seeds, over seeds "
        f"(scipy.stats.bootstrap of the mean over runs; {replicates} replicates). A check holds "
        "when at least 95% of "
        "replicates show the predicted ordering of every pair of sweep values, is violated "
        "when some pair is reversed in all but 5%/P of them (P pairs), and is inconclusive "
        "otherwise. Windows are split per run at its break-even step (before: strictly "
        "earlier measurements; after: from it on). Cells: verdict (share of replicates "
        "showing the predicted ordering)."
    )


def messages(report: Report) -> list[str]:
    """What the reader should know about the inputs: sweep notes, runs without a break-even
    point, stopped runs, skipped figures."""
    out = list(report.sweep.notes)
    runs = zip(report.sweep.labels, report.sweep.runs, report.phases, strict=True)
    for label, run, phases in runs:
        if phases.why:
            out.append(f"break-even, {label}: {phases.why}")
        if run.status in EXCLUDED_STATUSES:
            out.append(f"{label} {run.status}: {run.stop_reason or 'no stop reason recorded'}")
    if len(report.sweep.runs) == 1:
        out.append(SINGLE_RUN)
    out += report.figure_messages
    if not report.options.umap:
        out.append(UMAP_DISABLED)
    return out

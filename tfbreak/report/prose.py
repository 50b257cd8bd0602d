"""The report's sentences: verdicts, reasons, caveats, method (paper, Sec. 3 and Sec. 4.2).

Every sentence the report writes about the conjectures is made here from the structured verdicts
of `tfbreak.analysis.verdicts` and the caveats of `tfbreak.analysis.caveats`: a conjecture's
headline (`headline`, the one sentence to quote wherever the verdict is summarised), a literal
check as the chain of maxima from the noisiest SGD ("max λ1_K: lr=0.1 → 0.68 < lr=0.01 → 3.3:
holds"), the one reason a conjecture does not hold in a window (`why_not_holds`: a noise-aware
check with intervals, confidence and the pair least often in order, or why it cannot be
decided), why the windows differ, the warnings that change the reading, and the report's method
paragraphs (each written once) and messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfbreak.analysis.caveats import Caveats
from tfbreak.analysis.noise import WINDOW_TITLE
from tfbreak.analysis.series import display
from tfbreak.analysis.summary import RunSummary, peak_phase, without_break_even
from tfbreak.analysis.sweep import AXIS_SYMBOL
from tfbreak.analysis.verdicts import (
    Check,
    Comparison,
    Reason,
    ValueMean,
    Verdict,
    WindowKey,
)
from tfbreak.report.build import Report, ReportOptions
from tfbreak.report.formats import (
    CONJECTURE_NAME,
    axis_value,
    key_title,
    number,
    sweep_value,
)

UMAP_DISABLED = "UMAP (Figs. 1, 8): disabled (--no-umap)"
EQ1_ASSUMPTIONS = (
    "Eq. 1 assumes the loss is quadratic along e1_H (Assumption 1); s² is measured on the "
    "Hessian sample; N, S from metadata. Recomputed values use tfbreak.analysis.breakeven.eq1_lhs "
    "from hessian/lambda_1, breakeven/s2 and lr."
)


WHOLE: WindowKey = ("whole", "max")
WINDOW_PHRASE = {
    "whole": "on the whole trajectory",
    "before": "before break-even",
    "after": "after break-even",
    "late": "in the second half",
}


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


def _deciding_check(verdict: Verdict, key: WindowKey) -> Check | None:
    """The check that keeps a conjecture from holding in `key`: the first violated one, else
    the first that does not hold."""
    for wanted in ("violated", "inconclusive"):
        for c in verdict.checks:
            wc = c.windows.get(key)
            if c.precondition is not None and wanted == "inconclusive":
                return c
            if wc is not None and wc.status == wanted:
                return c
    return None


def why_not_holds(verdict: Verdict, key: WindowKey) -> str | None:
    """The one reason a conjecture does not hold in `key` (a window and statistic), or None if
    it holds: the sweep-wide reason, or the deciding check's values with their intervals and the
    pair of sweep values least often in the predicted order."""
    wv = verdict.windows.get(key)
    if wv is not None and wv.status == "holds":
        return None
    check = _deciding_check(verdict, key)
    if check is None:
        return None
    if check.precondition is not None:
        return reason_text(check.precondition)
    wc = check.windows[key]
    what = f"{wc.statistic} {display(check.metric)}"
    if wc.reason is not None:
        return f"{what}: {reason_text(wc.reason)}"
    chain = _chain(
        [(f"{axis_value(check.axis, v.value)} → {number(v.mean)}", v.mean) for v in wc.values]
    )
    text = f"{what} {wc.status}: {chain}"
    worst = wc.worst_pair
    if worst is not None:
        a, b = (axis_value(check.axis, x) for x in worst)
        text += (
            f"; {a} and {b} are in the predicted order in {wc.pair_shares[worst]:.2f} of "
            "bootstrap replicates"
        )
    if not wc.replicated_noise:
        text += " (no standard errors and one seed per value: no noise model)"
    return text


def answer_reasons(verdicts: list[Verdict], keys: Sequence[WindowKey]) -> list[str]:
    """Per conjecture that does not hold in all of `keys`, the one reason: that of the first key
    where it does not hold (the windows that share the reason are named with it)."""
    out = []
    for v in verdicts:
        whys = {key: why for key in keys if (why := why_not_holds(v, key)) is not None}
        if not whys:
            continue
        first = next(iter(whys.values()))
        where = "; ".join(key_title(*k) for k, why in whys.items() if why == first)
        out.append(f"Conjecture {v.conjecture} ({where}): {first}.")
    return out


def _peaks(check: Check, summaries: list[RunSummary]) -> str:
    """Where each usable run attains its whole-trajectory maximum of the check's metric."""
    steps = []
    for s in summaries:
        x = s.windows.values.get((check.metric, "whole", "max")) if s.windows else None
        if s.usable and x is not None:
            steps.append(f"step {x.step} ({s.label})")
    return ", ".join(steps)


def _late_start(summaries: list[RunSummary]) -> str:
    starts = sorted({s.windows.late for s in summaries if s.windows and s.windows.late})
    return " / ".join(f"{x:g}" for x in starts) or "—"


def _phase_why(check: Check, summaries: list[RunSummary]) -> str:
    phase = peak_phase(summaries, check.metric, "max")
    if phase.before and not phase.after:
        why = (
            "every run attains its whole-trajectory maximum before its break-even point, so "
            "the paper's whole-trajectory comparison is the early-phase one"
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


def windows_differ(verdicts: list[Verdict], summaries: list[RunSummary]) -> list[str]:
    """Per check whose verdict on maxima differs between the windows it can be decided in, why:
    where the runs attain their whole-trajectory maxima, against their break-even points or the
    start of the second half."""
    out = []
    for v in verdicts:
        for c in v.checks:
            st = {
                w: wc.status
                for (w, stat), wc in c.windows.items()
                if stat == "max" and (wc.reason is None or wc.reason.code != "window_missing")
            }
            if c.precondition is not None or len(set(st.values())) <= 1:
                continue
            parts = ", ".join(f"{status} {WINDOW_PHRASE[w]}" for w, status in st.items())
            text = f"max {display(c.metric)}: {parts}"
            if "before" in st and st.get("before") != st.get("after"):
                text += f": {_phase_why(c, summaries)}"
            else:
                text += (
                    f": the whole-trajectory maxima are at {_peaks(c, summaries)}; the second "
                    f"half starts at step {_late_start(summaries)}"
                )
            out.append(text + ".")
    return out


def introduction(report: Report) -> str:
    """What was compared: runs, model and data, the sweep, seeds, and when the report was made."""
    sweep, o = report.sweep, report.options
    runs = sweep.runs
    models = sorted(
        {f"{r.metadata.get('model', '?')} / {r.metadata.get('dataset', '?')}" for r in runs}
    )
    text = f"{len(runs)} run(s) of {', '.join(models)}"
    if sweep.axis is not None:
        values = []
        for r in runs:
            if (x := sweep_value(sweep.value(r))) not in values:
                values.append(x)
        symbol = {"lr": "η"}.get(sweep.axis, AXIS_SYMBOL.get(sweep.axis, sweep.axis))
        text += f", a sweep of {symbol} over {', '.join(values)}"
    if sweep.varying and sweep.varying != [sweep.axis]:
        text += f" (the runs differ in {', '.join(sweep.varying)})"
    text += f". Generated {report.generated.isoformat(timespec='seconds')}"
    if o.window:
        text += f"; smoothing: {o.mode} moving average over {o.window} measurements"
    return text + "."


def _truncated(caveats: Caveats) -> list[str]:
    if not caveats.truncated:
        return []
    cuts = {t.max_steps for t in caveats.truncated.values()}
    by = f" by --max_steps={cuts.pop()}" if len(cuts) == 1 and None not in cuts else ""
    groups: dict[str, list[str]] = {}
    for label, t in caveats.truncated.items():
        what = f"{t.steps} of {t.planned} steps ({t.epochs:.2g} of {t.planned_epochs:.2g} epochs)"
        groups.setdefault(what, []).append(label)
    runs = "; ".join(f"{', '.join(labels)}: {what}" for what, labels in groups.items())
    return [
        f"Truncated{by}: {runs}. The conjectures concern whole trajectories: these verdicts "
        "describe the first part of training only."
    ]


def caveat_items(caveats: Caveats, axis: str | None) -> list[str]:
    """The warnings that change how the verdicts read (`tfbreak.analysis.caveats`)."""
    out = _truncated(caveats)
    for label, (status, reason) in caveats.excluded.items():
        out.append(
            f"Excluded {label} from the verdicts: {status}"
            + (f" ({reason})" if reason else "")
            + "; the conjectures concern trajectories that converge."
        )
    for label, status in caveats.partial.items():
        out.append(f"{label} is {status}: its statistics cover only the measured part.")
    if caveats.single_seed:
        symbol = {"lr": "η", "batch_size": "S"}.get(axis or "", "sweep value")
        out.append(
            f"One run per {symbol}: the intervals hold measurement noise only, not the "
            "variation between seeds (--seeds adds replicates)."
        )
    if caveats.measurements:
        counts = ", ".join(f"{label}: {n}" for label, n in caveats.measurements.items())
        out.append(
            f"The runs were measured at different numbers of points ({counts}): a maximum of "
            "more noisy measurements is larger, so maxima differ for that reason too; the "
            "second half's medians do not."
        )
    return out


LATE_TABLE = (
    "The second half of training (from half of each run's planned steps on): each run's "
    "median, and each check's verdicts on the medians and on the maxima there."
)
HEADLINES = (
    "Bold: the noise-aware verdict on the whole trajectory, each check with its confidence. "
    "Indented: the paper's rule on raw maxima, in brackets on robust maxima."
)


def unavailable_windows(verdicts: list[Verdict], summaries: list[RunSummary]) -> list[str]:
    """Which windows some runs have no value in, and why, each reason once: runs without a
    break-even point have no before/after windows."""
    missing: dict[str, dict[str, str]] = {}  # window title -> {run label: why}
    for v in verdicts:
        for c in v.checks:
            for (w, _), wc in c.windows.items():
                if wc.reason is not None and wc.reason.code == "window_missing":
                    missing.setdefault(WINDOW_TITLE[w], {}).update(wc.reason.runs)
    splitless = set(without_break_even(summaries))
    split = {WINDOW_TITLE["before"], WINDOW_TITLE["after"]}
    grouped: dict[tuple[tuple[str, tuple[str, ...]], ...], list[str]] = {}
    for title, runs in missing.items():
        why: dict[str, list[str]] = {}
        for label, text in runs.items():
            if title in split and label in splitless:
                text = "no break-even point (see the break-even table)"
            why.setdefault(text, []).append(label)
        grouped.setdefault(tuple((t, tuple(ls)) for t, ls in why.items()), []).append(title)
    return [
        f"Not compared in {' and '.join(titles)}: "
        + "; ".join(f"{', '.join(labels)}: {text}" for text, labels in reasons)
        + "."
        for reasons, titles in grouped.items()
    ]


CELLS = (
    "Cells: the noise-aware verdict (the share of bootstrap replicates with the predicted "
    'ordering, Method). "Paper\'s rule": strict order of raw maxima, no noise.'
)


def maxima_method(options: ReportOptions) -> str:
    """What the literal checks and the conjecture table's maxima are."""
    return (
        "The paper's rule compares raw maxima (Sec. 4.2) in strict order; a tie is "
        "inconclusive, never a violation. The same rule on robust maxima (of the 3-point "
        "running median, which one outlying measurement cannot make) is shown beside it. Every "
        "maximum leaves out step 0: the initial point is the same for every η and S (runs of a "
        "seed share it), so it cannot tell them apart. The step where a maximum is attained is "
        "in brackets"
        + (
            f"; smoothed maxima use a {options.mode} moving average of {options.window}"
            if options.window
            else ""
        )
        + ". Per-run numbers: conjectures.csv; every statistic and verdict: "
        "conjectures_windows.csv."
    )


def noise_method(replicates: int) -> str:
    """How the noise-aware verdicts are made (`tfbreak.analysis.noise`)."""
    return (
        "Each statistic is bootstrapped over measurement noise (every measurement re-drawn from "
        "N(value, stderr²) where standard errors exist: jackknife errors of the K statistics "
        "over the L gradients, the sampling error of the Hessian sample and the Ritz residual "
        "for λ1_H, added in quadrature) and, for sweep values with several seeds, over seeds "
        f"(scipy.stats.bootstrap of the mean over runs; {replicates} replicates). A check holds "
        "when at least 95% of replicates show the predicted ordering of every pair of sweep "
        "values, is violated when some pair is reversed in all but 5%/P of them (P pairs), and "
        "is inconclusive otherwise; a conjecture holds when all its checks do."
    )


WINDOWS_METHOD = (
    "Windows, per run: the whole trajectory (the paper's); before and after its break-even "
    "step (before: strictly earlier measurements; after: from it on); the second half of its "
    "training (steps from half its planned steps on). The conjectures say that η and S decide "
    "the region SGD steers the trajectory to (Sec. 3): that region is where the trajectory "
    "spends its late phase, whether or not it ever reaches break-even (a small η may never), "
    "and the second half is the same share of training for every η and S, far from the early "
    "transient and from the initial point the runs share. There the median is compared as "
    "well as the maximum."
)
DENSITY_METHOD = (
    "Maxima depend on how densely a run was measured: the maximum of n noisy measurements grows "
    "with n, so only maxima over the same schedule compare cleanly (the measurements column of "
    "the statistics table gives n); medians do not grow with n."
)


def messages(report: Report) -> list[str]:
    """What the reader should know about the inputs besides the caveats: sweep notes, runs whose
    Eq. 1 LHS cannot be had, skipped figures."""
    out = list(report.sweep.notes)
    for label, phases in zip(report.sweep.labels, report.phases, strict=True):
        if phases.eq1 is None and phases.why:
            out.append(f"break-even, {label}: {phases.why}")
    out += report.figure_messages
    if not report.options.umap:
        out.append(UMAP_DISABLED)
    return out

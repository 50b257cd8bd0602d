"""The report as a document (paper, Sec. 3 and 4.2) and the files it is written to.

The answer first, on one screen: what was compared, the warnings that change how it reads
(truncated, excluded or partial runs, one seed per value, different measurement densities), each
conjecture's verdict on the whole trajectory and in the second half of training with its
confidence and the one reason it does not hold where it does not, the second half's medians, and
the break-even step per run. Then the key figures; the conjectures in detail (the paper's
literal checks, the verdict of every check in every window, why windows differ, the statistics per
run and window, the maxima per run); the method, each explanation once; the runs; the other
figures; messages. `write_report` writes report.md and report.html (built from the same blocks)
and the tables' companions conjectures.md, conjectures.csv, conjectures_windows.csv.
"""

from __future__ import annotations

from pathlib import Path

from tfbreak.analysis.verdicts import Verdict, WindowKey
from tfbreak.report import prose, tables
from tfbreak.report.build import Report
from tfbreak.report.render import (
    Block,
    BulletList,
    Callout,
    Heading,
    Image,
    Item,
    Paragraph,
    Table,
    markdown_table,
    to_html,
    to_markdown,
)

FIGURE_LINES = (
    "Against the SGD step (log scale, step 0 at the left): one colour per run; shaded, ± one "
    "standard error where measured; dotted vertical line and diamond, the run's break-even point "
    "(Eq. 1); dashed lines, the first epoch above each training-accuracy threshold (Fig. 4)."
)


def _items(texts: list[str]) -> BulletList:
    return BulletList(tuple(Item(t) for t in texts))


def answer_section(report: Report) -> list[Block]:
    """Title, what was compared, the warnings, the verdicts and why, the second half's medians,
    and the break-even points: the first screen."""
    blocks: list[Block] = [
        Heading(1, f"tfbreak report: {report.title}"),
        Paragraph(prose.introduction(report)),
    ]
    caveats = prose.caveat_items(report.caveats, report.sweep.axis)
    if caveats:
        blocks.append(Callout("Read with care", tuple(Item(c) for c in caveats)))
    blocks += [Heading(2, "Verdicts (Sec. 3)"), Table(tables.answer_rows(report))]
    reasons = prose.answer_reasons(report.verdicts, tables.ANSWER_KEYS)
    if reasons:
        blocks.append(_items(reasons))
    blocks.append(Paragraph(prose.CELLS))
    late = tables.late_rows(report)
    if late:
        blocks += [Paragraph(prose.LATE_TABLE), Table(late)]
    blocks += [
        Heading(2, "Break-even point (Eq. 1)"),
        Table(tables.breakeven_rows(report)),
    ]
    return blocks


def figures_section(report: Report, key: bool) -> list[Block]:
    shown = [f for f in report.figures if f.key == key]
    if not shown:
        return []
    title = "Key figures" if key else "More figures"
    lines = [Paragraph(FIGURE_LINES)] if key or not any(f.key for f in report.figures) else []
    return [Heading(2, title), *lines, *(Image(f.path, f.caption) for f in shown)]


def _decidable(verdicts: list[Verdict]) -> bool:
    return any(c.precondition is None for v in verdicts for c in v.checks)


def _shown_keys(verdicts: list[Verdict]) -> list[WindowKey]:
    """The (window, statistic) columns of the checks table: those where some check has values
    in every run (a window no run pair can compare is said once, in prose)."""
    return [
        key
        for key in tables.verdict_keys(verdicts)
        if any(
            c.windows[key].reason is None or c.windows[key].reason.code != "window_missing"
            for v in verdicts
            for c in v.checks
            if c.precondition is None and key in c.windows
        )
    ]


def details_section(report: Report) -> list[Block]:
    """The literal checks, the checks per window, why windows differ, the statistics per run and
    window, the maxima per run."""
    verdicts = report.verdicts
    items = tuple(
        Item(
            prose.headline(v),
            strong=True,
            children=tuple(Item(prose.check_sentence(c)) for c in v.checks),
        )
        for v in verdicts
    )
    blocks: list[Block] = [
        Heading(2, "The conjectures in detail"),
        Paragraph(prose.HEADLINES),
        BulletList(items),
    ]
    if _decidable(verdicts):
        blocks += [
            Heading(3, "Every check in every window"),
            Table(tables.check_rows(verdicts, _shown_keys(verdicts))),
        ]
        blocks += [Paragraph(s) for s in prose.unavailable_windows(verdicts, report.summaries)]
        differ = prose.windows_differ(verdicts, report.summaries)
        if differ:
            blocks += [Paragraph("Why the windows differ:"), _items(differ)]
    blocks += [
        Heading(3, "Statistics per run and window, with 95% bootstrap intervals"),
        Table(tables.statistic_rows(report.summaries, report.options.window)),
        Heading(3, "Maxima per run (the paper's rule)"),
        Table(tables.conjecture_rows(report.summaries, report.options.window)),
    ]
    return blocks


def method_section(report: Report) -> list[Block]:
    return [
        Heading(2, "Method"),
        Paragraph(prose.maxima_method(report.options)),
        Paragraph(prose.noise_method(report.options.replicates)),
        Paragraph(prose.WINDOWS_METHOD),
        Paragraph(prose.DENSITY_METHOD),
        Paragraph(prose.EQ1_ASSUMPTIONS),
    ]


def runs_section(report: Report) -> list[Block]:
    return [Heading(2, "Runs"), Table(tables.run_rows(report))]


def messages_section(report: Report) -> list[Block]:
    messages = prose.messages(report) or ["none"]
    return [Heading(2, "Messages"), _items(messages)]


def document(report: Report) -> list[Block]:
    """The report's blocks, in order."""
    return [
        *answer_section(report),
        *figures_section(report, key=True),
        *details_section(report),
        *method_section(report),
        *runs_section(report),
        *figures_section(report, key=False),
        *messages_section(report),
    ]


def write_report(report: Report, out: Path, *, html: bool = True) -> Path:
    """Write report.md (and report.html) and the CSV/Markdown companions into `out`; returns the
    path of report.md."""
    out.mkdir(parents=True, exist_ok=True)
    options = report.options
    (out / "conjectures.csv").write_text(
        tables.conjectures_csv(report.summaries, report.verdicts, options.window),
        encoding="utf-8",
    )
    (out / "conjectures_windows.csv").write_text(
        tables.conjectures_windows_csv(report.summaries, report.verdicts), encoding="utf-8"
    )
    (out / "conjectures.md").write_text(
        markdown_table(tables.conjecture_rows(report.summaries, options.window)), encoding="utf-8"
    )
    blocks = document(report)
    md_path = out / "report.md"
    md_path.write_text(to_markdown(blocks, out), encoding="utf-8")
    if html:
        (out / "report.html").write_text(to_html(blocks, report.title, out), encoding="utf-8")
    return md_path

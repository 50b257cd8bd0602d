"""The report as a document (paper, Sec. 3 and 4.2) and the files it is written to.

Sections: runs; the conjectures (literal verdicts, the per-run maxima, the noise-aware verdicts per
window with their explanation and the maxima per window); break-even points (Eq. 1) with accuracy
thresholds; figures; messages. `write_report` writes report.md (and report.html), the tables'
companions conjectures.md, conjectures.csv, conjectures_windows.csv.
"""

from __future__ import annotations

from pathlib import Path

from tfbreak.report import prose, tables
from tfbreak.report.build import Report
from tfbreak.report.render import (
    Block,
    BulletList,
    Heading,
    Image,
    Item,
    Paragraph,
    Table,
    markdown_table,
    to_html,
    to_markdown,
)


def runs_section(report: Report) -> list[Block]:
    return [Heading(2, "Runs"), Table(tables.run_rows(report))]


def verdicts_section(report: Report) -> list[Block]:
    """Headline and literal checks per conjecture, notes, and the per-run maxima."""
    items = tuple(
        Item(
            prose.headline(v),
            strong=True,
            children=tuple(Item(prose.check_sentence(c)) for c in v.checks),
        )
        for v in report.verdicts
    )
    blocks: list[Block] = [Heading(2, "Conjectures (Sec. 3)"), BulletList(items)]
    if report.verdicts and report.verdicts[0].notes:
        notes = report.verdicts[0].notes
        blocks.append(BulletList(tuple(Item(f"note: {prose.note_text(n)}") for n in notes)))
    blocks.append(Paragraph(prose.maxima_note(report.options)))
    blocks.append(Table(tables.conjecture_rows(report.summaries, report.options.window)))
    return blocks


def windows_section(report: Report) -> list[Block]:
    """Noise-aware verdicts per window, their explanation, and the maxima per window."""
    sentences = prose.window_sentences(report.verdicts)
    return [
        Heading(3, "Noise-aware verdicts: whole trajectory, before and after break-even"),
        Paragraph(prose.noise_method(report.options.replicates)),
        Table(tables.window_verdict_rows(report.verdicts)),
        *(Paragraph(prose.explain(v, report.summaries)) for v in report.verdicts),
        BulletList(tuple(Item(s) for s in sentences)),
        Heading(3, "Maxima per window, with 95% bootstrap intervals"),
        Table(tables.window_maxima_rows(report.summaries, report.options.window)),
    ]


def breakeven_section(report: Report) -> list[Block]:
    return [
        Heading(2, "Break-even point (Eq. 1) and accuracy thresholds"),
        Table(tables.breakeven_rows(report)),
        Paragraph(prose.EQ1_ASSUMPTIONS),
    ]


def figures_section(report: Report) -> list[Block]:
    return [Heading(2, "Figures"), *(Image(f.path, f.caption) for f in report.figures)]


def messages_section(report: Report) -> list[Block]:
    messages = prose.messages(report) or ["none"]
    return [Heading(2, "Messages"), BulletList(tuple(Item(m) for m in messages))]


def document(report: Report) -> list[Block]:
    """The report's blocks, in order."""
    return [
        Heading(1, f"tfbreak report: {report.title}"),
        Paragraph(prose.generated(report)),
        *runs_section(report),
        *verdicts_section(report),
        *windows_section(report),
        *breakeven_section(report),
        *figures_section(report),
        *messages_section(report),
    ]


def write_report(report: Report, out: Path, *, html: bool = True) -> Path:
    """Write report.md (and report.html) and the CSV/Markdown companions into `out`; returns the
    path of report.md."""
    out.mkdir(parents=True, exist_ok=True)
    options = report.options
    (out / "conjectures.csv").write_text(
        tables.conjectures_csv(report.summaries, options.window), encoding="utf-8"
    )
    (out / "conjectures_windows.csv").write_text(
        tables.conjectures_windows_csv(report.summaries, report.verdicts), encoding="utf-8"
    )
    (out / "conjectures.md").write_text(
        markdown_table(tables.conjecture_rows(report.summaries, options.window)), encoding="utf-8"
    )
    text = to_markdown(document(report), out)
    md_path = out / "report.md"
    md_path.write_text(text, encoding="utf-8")
    if html:
        (out / "report.html").write_text(to_html(text, report.title, out), encoding="utf-8")
    return md_path

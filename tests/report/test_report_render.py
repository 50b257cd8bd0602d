"""Rendering: blocks -> Markdown -> HTML (Python-Markdown). Every Markdown table of a report is an
HTML table with the same cells, and no text turns into markup it was not meant to be."""

from __future__ import annotations

import itertools
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt

from tfbreak.report.render import (
    BulletList,
    Heading,
    Image,
    Item,
    Paragraph,
    Table,
    escape,
    markdown_table,
    to_html,
    to_markdown,
)

SEPARATOR = re.compile(r"^\|(---\|)+$")


class _Html(HTMLParser):
    """A page's tables (rows of cell texts), its paragraph and list-item texts in document order
    (a nested list's text is not its parent item's), and how often each tag occurs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.texts: dict[str, list[str]] = {"p": [], "li": []}
        self.tags: dict[str, int] = {}
        self._open: list[tuple[str, int, list[str]]] = []  # (tag, index, text parts)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self._open.append((tag, len(self.tables[-1][-1]) - 1, []))
        elif tag in self.texts:
            self.texts[tag].append("")
            self._open.append((tag, len(self.texts[tag]) - 1, []))

    def handle_endtag(self, tag):
        if tag in ("td", "th", *self.texts):
            name, i, parts = self._open.pop()
            target = self.tables[-1][-1] if name in ("td", "th") else self.texts[name]
            target[i] = "".join(parts).strip()

    def handle_data(self, data):
        if self._open:
            self._open[-1][2].append(data)


def _markdown_tables(md: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text (a header line, the |---| line, rows up to the first
    line that is not a row) as rows of cell texts, escapes undone."""
    lines = md.splitlines()
    tables = []
    for i in (i for i, line in enumerate(lines) if SEPARATOR.match(line)):
        rows = list(itertools.takewhile(lambda x: x.startswith("|"), lines[i + 1 :]))
        tables.append([_cells(r) for r in [lines[i - 1], *rows]])
    return tables


def _cells(row: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
    return [c.strip().replace("\\|", "|").replace("\\*", "*") for c in cells]


def test_every_table_renders_as_a_table(synthetic_report):
    md = (synthetic_report / "report.md").read_text()
    html = (synthetic_report / "report.html").read_text()
    page = _Html(html)
    expected = _markdown_tables(md)
    assert len(expected) == 5  # runs, maxima, window verdicts, window maxima, break-even
    assert page.tags["table"] == len(expected)
    assert page.tables == expected
    assert "<pre" not in html and "|---|" not in html


def test_html_says_what_the_markdown_says(synthetic_report):
    """Paragraphs and list items read the same in the HTML as in the Markdown; emphasis only
    where meant: the two conjecture headlines in bold, the seven figure captions in italics."""
    lines = (synthetic_report / "report.md").read_text().replace("\\*", "*").splitlines()
    items = [re.sub(r"^ *- (\*\*)?(.*?)(\*\*)?$", r"\2", x) for x in lines if re.match(" *- ", x)]
    paragraphs = [x for x in lines if x and not x.startswith(("#", "|", "![", "- ", "    - "))]
    captions = [x for x in paragraphs if x.startswith("*")]
    page = _Html((synthetic_report / "report.html").read_text())
    assert page.texts["li"] == items
    assert [t for t in page.texts["p"] if t] == [x.strip("*") for x in paragraphs]
    assert page.tags["strong"] == 2 and page.tags["em"] == len(captions) == 7
    assert page.tags["img"] == 7


def test_markdown_of_blocks(tmp_path):
    png = tmp_path / "fig.png"
    plt.imsave(png, [[0.0, 1.0]])
    blocks = [
        Heading(2, "Title"),
        Paragraph("λ*_K alone; a | b"),
        BulletList((Item("head", strong=True, children=(Item("λ*_K and λ*_H"),)), Item("x"))),
        Table([{"a": "1 | 2", "λ*_K": "—"}]),
        Image(png, "λ*_K per run"),
    ]
    md = to_markdown(blocks, tmp_path)
    assert md == (
        "## Title\n\n"
        "λ*_K alone; a | b\n\n"
        "- **head**\n    - λ\\*_K and λ\\*_H\n- x\n\n"
        "| a | λ*_K |\n|---|---|\n| 1 \\| 2 | — |\n\n"
        "![λ*_K per run](fig.png)\n\n*λ\\*_K per run*\n"
    )
    html = to_html(md, "t <1>", tmp_path)
    assert "<title>t &lt;1&gt;</title>" in html and 'src="data:image/png;base64,' in html
    assert "<td>1 | 2</td>" in html and "<em>λ*_K per run</em>" in html
    assert "<li>λ*_K and λ*_H</li>" in html


def test_escape_leaves_a_lone_asterisk():
    assert escape("λ*_K") == "λ*_K"
    assert escape("λ*_K and λ*_H") == "λ\\*_K and λ\\*_H"
    assert escape("λ*_K", markup=2) == "λ\\*_K"  # inside *...* or **...**
    assert escape("plain", markup=2) == "plain"
    assert markdown_table([]) == "_(no runs)_\n"

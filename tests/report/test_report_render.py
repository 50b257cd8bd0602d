"""Rendering: blocks -> Markdown and blocks -> HTML. report.md, rendered by a CommonMark parser
(markdown-it-py, raw HTML allowed: the worst case), says what report.html says, table for table
and sentence for sentence; no text turns into markup; images come from the report's folder only.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_pages import Page, rendered

from tfbreak.report.render import (
    BulletList,
    Callout,
    Heading,
    Image,
    Item,
    OutsideReportError,
    Paragraph,
    Table,
    markdown_table,
    markdown_text,
    plain,
    to_html,
    to_markdown,
)


def test_markdown_and_html_say_the_same(synthetic_report):
    md = rendered((synthetic_report / "report.md").read_text())
    html = Page((synthetic_report / "report.html").read_text())
    assert len(html.tables) >= 6 and md.tables == html.tables
    assert md.items == html.items
    assert md.flow == html.flow
    assert html.count("img") == md.count("img") == 7
    assert html.count("strong") == md.count("strong")  # headlines and the callout title
    assert md.count("em") == 7 and html.count("figcaption") == 7  # the captions


def test_markdown_of_blocks(tmp_path):
    png = tmp_path / "fig.png"
    plt.imsave(png, [[0.0, 1.0]])
    blocks = [
        Heading(2, "Title"),
        Paragraph("λ*_K alone; a | b < c"),
        BulletList((Item("head", strong=True, children=(Item("- λ*_K and λ*_H"),)), Item("x"))),
        Callout("Careful", (Item("one"),)),
        Table([{"a": "1 | 2", "λ*_K": "-0.5"}]),
        Image(png, "λ*_K per run"),
    ]
    assert to_markdown(blocks, tmp_path) == (
        "## Title\n\n"
        "λ\\*\\_K alone; a \\| b < c\n\n"
        "- **head**\n    - \\- λ\\*\\_K and λ\\*\\_H\n- x\n\n"
        "> **Careful**\n>\n> - one\n\n"
        "| a | λ\\*\\_K |\n|---|---|\n| 1 \\| 2 | -0.5 |\n\n"
        "![λ\\*\\_K per run](fig.png)\n\n*λ\\*\\_K per run*\n"
    )
    html = to_html(blocks, "t <1>", tmp_path)
    assert "<title>t &lt;1&gt;</title>" in html and 'src="data:image/png;base64,' in html
    assert "<td>1 | 2</td>" in html and "<figcaption>λ*_K per run</figcaption>" in html
    assert "<li>- λ*_K and λ*_H</li>" in html and "<p>λ*_K alone; a | b &lt; c</p>" in html
    assert "Content-Security-Policy" in html
    assert markdown_table([]) == "_(no runs)_\n"


HOSTILE = st.text(
    st.sampled_from(list("\\`*_[]()!<>&#|~$:=+-.1aZ \t\n\r\x00/\"'λ;{}@")), min_size=1, max_size=30
)


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_markdown_text_renders_as_typed(text):
    """Whatever a text holds, CommonMark (raw HTML allowed) renders it as one paragraph, one list
    item or one table cell with exactly the text (white space aside), and no other element."""
    want = plain(text)
    if not want:
        return
    para = rendered(markdown_text(text, block_start=True))
    assert [t for t, _ in para.tags] == ["p"] and para.flow == [want]
    item = rendered("- " + markdown_text(text, block_start=True))
    assert [t for t, _ in item.tags] == ["ul", "li"] and item.items == [want]
    table = rendered(markdown_table([{"x": text}]))
    assert table.tables == [[["x"], [want]]]
    assert {t for t, _ in table.tags} == {"table", "thead", "tbody", "tr", "th", "td"}


def test_images_only_from_the_report_folder(tmp_path):
    """An image outside the report's folder, or a link inside it to a file outside, is refused:
    nothing else is ever read and inlined."""
    out, elsewhere = tmp_path / "report", tmp_path / "elsewhere"
    out.mkdir(), elsewhere.mkdir()
    secret = elsewhere / "secret.png"
    plt.imsave(secret, [[0.0, 1.0]])
    (out / "link.png").symlink_to(secret)
    for path in (secret, out / "link.png", out / ".." / "elsewhere" / "secret.png", out):
        for render in (to_markdown, lambda b, base: to_html(b, "t", base)):
            with pytest.raises(OutsideReportError):
                render([Image(path, "x")], out)

"""A report over run directories whose names and metadata hold markup, script, links, a local
image and spreadsheet formulas: none of it is live in report.md, report.html or the CSV files,
and no file outside the report's folder is read."""

from __future__ import annotations

import base64
import csv
import io

import matplotlib.pyplot as plt
from report_pages import Page, rendered

from tfbreak import report
from tfbreak.report.tables import csv_cell
from tfbreak.runs import names
from tfbreak.runs.synthetic import write_synthetic_run

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.example","x")'
# What the report's own HTML is made of: tags and their attributes.
HTML_TAGS = {
    "html": {"lang"},
    "head": set(),
    "meta": {"charset", "http-equiv", "content"},
    "title": set(),
    "style": set(),
    "body": set(),
    **{h: set() for h in ("h1", "h2", "h3", "p", "ul", "li", "strong", "figcaption")},
    **{t: set() for t in ("table", "thead", "tbody", "tr", "th", "td")},
    "div": {"class"},
    "figure": set(),
    "img": {"src", "alt"},
}
MARKDOWN_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "strong", "em", "blockquote", "img"}
MARKDOWN_TAGS |= {"table", "thead", "tbody", "tr", "th", "td"}


def _hostile_sweep(root, sentinel):
    """Two runs that differ in no hyperparameter (so they are labelled by their folder names),
    with hostile names and metadata values in every field the report shows."""
    # A "$...$" in a legend would be math text to matplotlib (and this one an error).
    names_ = ["<img src=x onerror=alert(1)> $\\notacommand$", '=HYPERLINK("javascript:alert(1)")']
    for i, name in enumerate(names_):
        write_synthetic_run(
            root / name,
            steps=[0, 10, 20, 30],
            measurements={
                names.K_LAMBDA_1: [1.0, 2.0 + i, 3.0, 2.5],
                names.HESSIAN_LAMBDA_1: [10.0, 20.0, 30.0 + i, 25.0],
            },
            status="diverged" if i else "completed",
            stop_reason=f"{FORMULA} <svg onload=alert(1)> ![x]({sentinel})",
            model=SCRIPT,
            dataset=f"![x]({sentinel})",
            bn_mode="javascript:alert(1)",
            noise_layers=[FORMULA, "[link](javascript:alert(1))"],
        )


def test_nothing_from_a_run_directory_is_live(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sentinel = elsewhere / "sentinel.png"
    plt.imsave(sentinel, [[0.0, 1.0], [1.0, 0.25]])
    secret = base64.b64encode(sentinel.read_bytes()).decode()[:40]
    _hostile_sweep(tmp_path / "sweep", sentinel)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "sweep"), "--out", str(out), "--no-umap"]) == 0

    html = (out / "report.html").read_text()
    page = Page(html)
    for tag, attrs in page.tags:
        assert tag in HTML_TAGS and set(attrs) <= HTML_TAGS[tag], (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
    assert secret not in html and page.count("img") == sum(1 for _ in out.glob("*.png"))
    text = " ".join(page.flow + page.items + [c for t in page.tables for r in t for c in r])
    assert SCRIPT in text and "onerror=alert(1)" in text and FORMULA in text  # shown as text
    assert "javascript:alert(1)" in text and f"![x]({sentinel})" in text

    md = (out / "report.md").read_text()
    parsed = rendered(md)
    for tag, attrs in parsed.tags:
        assert tag in MARKDOWN_TAGS, (tag, attrs)
        if tag == "img":
            assert (out / attrs["src"]).parent == out and (out / attrs["src"]).is_file()
    shown = " ".join(parsed.flow + parsed.items + [c for t in parsed.tables for r in t for c in r])
    assert (
        SCRIPT in shown
        and f"![x]({sentinel})" in shown
        and str(sentinel) not in {attrs.get("src") for _, attrs in parsed.tags}
    )

    runs = next(t for t in page.tables if t[0][:2] == ["run", "directory"])
    assert {"bn_mode", "noise_layers"} <= set(runs[0])
    assert "javascript:alert(1)" in runs[1][runs[0].index("bn_mode")]

    for name in ("conjectures.csv", "conjectures_windows.csv"):
        for row in csv.reader(io.StringIO((out / name).read_text())):
            for c in row:
                if c.startswith(("=", "+", "-", "@", "\t", "\r")):
                    float(c)  # only a number may start like a formula
    assert "'=HYPERLINK" in (out / "conjectures.csv").read_text()


def test_csv_cells_neutralised_numbers_kept():
    assert csv_cell(FORMULA) == "'" + FORMULA
    for text in ("+1+1", "-1+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("-0.5") == "-0.5" and csv_cell(-0.5) == -0.5 and csv_cell(3) == 3
    assert csv_cell("lr=0.1") == "lr=0.1" and csv_cell(None) is None

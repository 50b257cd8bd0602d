"""A report as a list of blocks -> Markdown -> HTML (Python-Markdown with its tables extension).

Blocks: `Heading`, `Paragraph`, `BulletList` (of `Item`s, which nest), `Table` (rows: dicts with
the same keys, in column order) and `Image` (a PNG and its caption). `to_markdown` writes them as
Markdown: pipe tables, nested lists indented by four spaces, each image followed by its caption in
italics. `to_html` converts that Markdown with the `markdown` package (tables extension) and inlines
every local image as base64, so report.html stands alone.

Escaping. Text is written as typed except for two characters. ``|`` is escaped in table cells.
An asterisk that is the only one in its span (a paragraph, an item, a caption, a cell) can neither
open nor close emphasis and stays as typed (the paper's λ*_K reads as λ*_K in report.md);
otherwise every asterisk of the text is escaped (``\\*``) so that no pair of them turns into
emphasis.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import xml.etree.ElementTree as etree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

INDENT = "    "  # nested list items: four spaces (Python-Markdown and CommonMark agree)
EMPTY_TABLE = "_(no runs)_"
CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto}"
    "table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:2px 6px}"
    "img{max-width:100%}"
)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Item:
    """A list item, in bold if `strong`, with nested items."""

    text: str
    strong: bool = False
    children: tuple[Item, ...] = ()


@dataclass(frozen=True)
class BulletList:
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Table:
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Image:
    path: Path
    caption: str


Block = Heading | Paragraph | BulletList | Table | Image


def escape(text: str, markup: int = 0) -> str:
    """`text` for a Markdown span to which the caller adds `markup` asterisks of its own (2 for
    bold or italics): asterisks escaped unless a lone one (see module doc)."""
    if "*" in text and text.count("*") + markup > 1:
        return text.replace("*", "\\*")
    return text


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown pipe table from a list of dicts with the same keys (header: the keys)."""
    if not rows:
        return EMPTY_TABLE + "\n"
    keys = list(rows[0])

    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(escape(str(c)).replace("|", "\\|") for c in cells) + " |"

    lines = [line(keys), "|" + "|".join("---" for _ in keys) + "|"]
    lines += [line([r[k] for k in keys]) for r in rows]
    return "\n".join(lines) + "\n"


def _item_lines(item: Item, depth: int = 0) -> list[str]:
    text = f"**{escape(item.text, 2)}**" if item.strong else escape(item.text)
    lines = [f"{INDENT * depth}- {text}"]
    for child in item.children:
        lines += _item_lines(child, depth + 1)
    return lines


def _block_markdown(block: Block, base: Path) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + escape(block.text)
    if isinstance(block, Paragraph):
        return escape(block.text)
    if isinstance(block, BulletList):
        return "\n".join(line for item in block.items for line in _item_lines(item))
    if isinstance(block, Table):
        return markdown_table(block.rows).rstrip()
    rel = block.path.relative_to(base).as_posix()
    return f"![{escape(block.caption)}]({rel})\n\n*{escape(block.caption, 2)}*"


def to_markdown(blocks: list[Block], base: Path) -> str:
    """The blocks as Markdown; image paths relative to `base` (the report's directory)."""
    return "\n\n".join(_block_markdown(b, base) for b in blocks) + "\n"


class _InlineImages(Treeprocessor):
    """Replaces the src of every <img> naming a file under `base` by a base64 data URI."""

    def __init__(self, md: markdown.Markdown, base: Path) -> None:
        super().__init__(md)
        self.base = base

    def run(self, root: etree.Element) -> None:
        for img in root.iter("img"):
            path = self.base / img.get("src", "")
            if path.is_file():
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                img.set("src", f"data:{mime};base64,{data}")


class _InlineImagesExtension(Extension):
    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        md.treeprocessors.register(_InlineImages(md, self.base), "tfbreak_inline_images", 5)


def to_html(markdown_text: str, title: str, base: Path) -> str:
    """A stand-alone HTML page of the Markdown (images under `base` inlined as base64)."""
    body = markdown.markdown(markdown_text, extensions=["tables", _InlineImagesExtension(base)])
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        f"{body}\n</body></html>\n"
    )

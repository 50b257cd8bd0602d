"""A report as a list of blocks, written as Markdown and as HTML, each escaped for its own syntax.

Blocks: `Heading`, `Paragraph`, `BulletList` (of `Item`s, which nest), `Callout` (a titled list:
what changes how the report reads), `Table` (rows: dicts with the same keys, in column order) and
`Image` (a PNG of the report's folder and its caption).

Every text of a block is literal text, never markup: the report's own words and what it quotes
from run directories (folder names, metadata values, stop reasons) are written alike, and nothing
a run directory holds can become markup.

* HTML (`to_html`) is built from the blocks, not from the Markdown: every text and attribute is
  escaped by markupsafe (`Markup.format`, `escape`), so text from a run directory cannot become an
  element or an attribute. A Content-Security-Policy forbids scripts and every fetch but inline
  images. Images are inlined as base64 data URIs, and only regular files inside the report's
  folder are read (`inside`: the path resolved, symlinks followed, must stay in the folder), so
  report.html stands alone and can inline nothing else.
* Markdown (`to_markdown`, CommonMark with GitHub's pipe tables): text is escaped
  (`markdown_text`) wherever it could start markup: a backslash before ``\\ ` * | ~ $``, before
  ``]`` where a link or image would follow (``](``, ``][``) and before ``_`` unless it stands
  between two letters or digits (λ1_K stays as typed); ``&lt;`` for a ``<`` that could open a tag,
  an autolink or a comment, ``&amp;`` for an ``&`` that could open a character reference; a
  backslash before a leading ``# > + - = [`` or list number; line breaks as spaces. No link
  reference definition can be written, so ``[...]`` alone is no link. Images name files relative
  to the report's folder.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

INDENT = "    "  # nested list items: four spaces (CommonMark)
EMPTY_TABLE = "(no runs)"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 12px;line-height:1.35}"
    "h1{font-size:1.5em;margin:.4em 0 .2em}h2{font-size:1.25em;margin:.9em 0 .3em}"
    "h3{font-size:1.05em}p{margin:.35em 0}ul{margin:.3em 0}"
    "table{border-collapse:collapse;font-size:12px;margin:.3em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}.scroll{overflow-x:auto}"
    ".callout{background:#fff6dd;border-left:4px solid #e0a800;padding:2px 10px;margin:.4em 0}"
    ".callout p{margin:.2em 0}"
    "figure{margin:1em 0}figcaption{font-size:13px;color:#333}img{max-width:100%}"
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
class Callout:
    """A titled list set apart from the text (the warnings that change how a report reads)."""

    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Table:
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Image:
    path: Path
    caption: str


Block = Heading | Paragraph | BulletList | Callout | Table | Image


# ------------------------------------------------------------------ Markdown
_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BACKSLASHED = re.compile(r"[\\`*|~$]|\](?=[(\[])")  # code, emphasis, tables, math, links
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # not between two letters/digits
_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # raw HTML, autolinks, comments
_ENTITY = re.compile(r"&(?=[A-Za-z#])")  # character references
_BLOCK_START = re.compile(r"(?:[#>+\-=\[]|\d+(?=[.)]))")  # heading, quote, list, link label


def plain(text: Any) -> str:
    """Text on one line: control characters dropped, every run of white space one space."""
    return _WHITESPACE.sub(" ", _CONTROL.sub("", str(text))).strip()


def markdown_text(text: Any, block_start: bool = False) -> str:
    """`text` as literal Markdown text (see module doc): it renders as typed and opens no markup,
    whatever it holds. `block_start`: the text starts a block (a paragraph, a list item), where
    a leading ``#``, ``-``, ``1.`` would open one."""
    s = plain(text)
    s = _BACKSLASHED.sub(lambda m: "\\" + m.group(), s)
    s = _UNDERSCORE.sub(r"\\_", s)
    s = _TAG.sub("&lt;", _ENTITY.sub("&amp;", s))
    if block_start and (m := _BLOCK_START.match(s)) is not None:  # "1." -> "1\.", "#" -> "\#"
        at = m.end() if m.group()[0].isdigit() else 0
        s = s[:at] + "\\" + s[at:]
    return s


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown pipe table from a list of dicts with the same keys (header: the keys)."""
    if not rows:
        return f"_{markdown_text(EMPTY_TABLE)}_\n"
    keys = list(rows[0])

    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(markdown_text(c) or " " for c in cells) + " |"

    lines = [line(keys), "|" + "|".join("---" for _ in keys) + "|"]
    lines += [line([r[k] for k in keys]) for r in rows]
    return "\n".join(lines) + "\n"


def _item_lines(item: Item, depth: int = 0) -> list[str]:
    text = markdown_text(item.text, block_start=not item.strong)
    lines = [f"{INDENT * depth}- " + (f"**{text}**" if item.strong else text)]
    for child in item.children:
        lines += _item_lines(child, depth + 1)
    return lines


def _list_markdown(items: tuple[Item, ...]) -> str:
    return "\n".join(line for item in items for line in _item_lines(item))


def _block_markdown(block: Block, base: Path) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + markdown_text(block.text, block_start=True)
    if isinstance(block, Paragraph):
        return markdown_text(block.text, block_start=True)
    if isinstance(block, BulletList):
        return _list_markdown(block.items)
    if isinstance(block, Callout):
        lines = [f"**{markdown_text(block.title)}**", "", *_list_markdown(block.items).split("\n")]
        return "\n".join(f"> {line}".rstrip() for line in lines)
    if isinstance(block, Table):
        return markdown_table(block.rows).rstrip()
    rel = inside(block.path, base).relative_to(base.resolve()).as_posix()
    caption = markdown_text(block.caption)
    return f"![{caption}]({rel})\n\n*{caption}*"


def to_markdown(blocks: list[Block], base: Path) -> str:
    """The blocks as Markdown; image paths relative to `base` (the report's folder)."""
    return "\n\n".join(_block_markdown(b, base) for b in blocks) + "\n"


# ------------------------------------------------------------------ HTML
class OutsideReportError(ValueError):
    """A file the report was asked to show is not inside the report's folder."""


def inside(path: Path, base: Path) -> Path:
    """`path` resolved (symlinks followed), if it is a regular file inside `base` (resolved);
    else OutsideReportError."""
    root, resolved = base.resolve(), path.resolve()
    if not resolved.is_relative_to(root) or not resolved.is_file():
        raise OutsideReportError(f"{str(path)!r} is not a file inside {str(base)!r}")
    return resolved


def data_uri(path: Path, base: Path) -> str:
    """The file (inside `base`, see `inside`) as a base64 data URI."""
    resolved = inside(path, base)
    mime = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(resolved.read_bytes()).decode('ascii')}"


def _items_html(items: tuple[Item, ...]) -> Markup:
    out = Markup("")
    for item in items:
        text = escape(plain(item.text))
        if item.strong:
            text = Markup("<strong>{}</strong>").format(text)
        if item.children:
            text += _items_html(item.children)
        out += Markup("<li>{}</li>").format(text)
    return Markup("<ul>{}</ul>\n").format(out)


def _table_html(rows: list[dict[str, Any]]) -> Markup:
    if not rows:
        return Markup("<p><em>{}</em></p>\n").format(EMPTY_TABLE)
    keys = list(rows[0])
    head = Markup("").join(Markup("<th>{}</th>").format(plain(k)) for k in keys)
    body = Markup("").join(
        Markup("<tr>{}</tr>\n").format(
            Markup("").join(Markup("<td>{}</td>").format(plain(r[k])) for k in keys)
        )
        for r in rows
    )
    return Markup(
        '<div class="scroll"><table><thead><tr>{}</tr></thead>\n<tbody>\n{}</tbody></table></div>\n'
    ).format(head, body)


def _block_html(block: Block, base: Path) -> Markup:
    if isinstance(block, Heading):
        level = min(max(int(block.level), 1), 6)
        return Markup("<h{0}>{1}</h{0}>\n").format(level, plain(block.text))
    if isinstance(block, Paragraph):
        return Markup("<p>{}</p>\n").format(plain(block.text))
    if isinstance(block, BulletList):
        return _items_html(block.items)
    if isinstance(block, Callout):
        return Markup('<div class="callout"><p><strong>{}</strong></p>{}</div>\n').format(
            plain(block.title), _items_html(block.items)
        )
    if isinstance(block, Table):
        return _table_html(block.rows)
    caption = plain(block.caption)
    return Markup('<figure><img src="{}" alt="{}"><figcaption>{}</figcaption></figure>\n').format(
        data_uri(block.path, base), caption, caption
    )


def to_html(blocks: list[Block], title: str, base: Path) -> str:
    """A stand-alone HTML page of the blocks (images inside `base` inlined as base64)."""
    body = Markup("").join(_block_html(b, base) for b in blocks)
    return str(
        Markup(
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="{}">'
            "<title>{}</title><style>{}</style></head>\n<body>\n{}</body></html>\n"
        ).format(CSP, plain(title), Markup(CSS), body)
    )

"""What a report page shows, parsed with html.parser: its tables, list items, paragraphs and
captions, and its tags with their attributes; report.md rendered by a CommonMark parser
(markdown-it-py) with raw HTML allowed, the worst case for escaping."""

from __future__ import annotations

from html.parser import HTMLParser

from markdown_it import MarkdownIt

COMMONMARK = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
FLOW = ("p", "figcaption")


class Page(HTMLParser):
    """A page's tables (rows of cell texts), its list-item texts and its flow texts (paragraphs,
    figure captions) in document order (a nested list's text is not its parent item's), and its
    tags with their attributes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.items: list[str] = []
        self.flow: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._open: list[tuple[str, list[str]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        if tag in ("td", "th", "li", *FLOW):
            self._open.append((tag, []))

    def handle_endtag(self, tag):
        if tag in ("td", "th", "li", *FLOW):
            name, parts = self._open.pop()
            text = "".join(parts).strip()
            if name in ("td", "th"):
                self.tables[-1][-1].append(text)
            elif name == "li":
                self.items.append(text)
            elif text:
                self.flow.append(text)

    def handle_data(self, data):
        if self._open:
            self._open[-1][1].append(data)

    def count(self, tag: str) -> int:
        return sum(t == tag for t, _ in self.tags)


def rendered(md: str) -> Page:
    """report.md as CommonMark renders it."""
    return Page(COMMONMARK.render(md))

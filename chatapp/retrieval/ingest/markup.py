"""Text formats → structural blocks (headings, paragraphs, code blocks, list/table runs), each
with its 1-based line range and the heading path in effect. Used by the loaders; the chunker
turns blocks into chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

BlockKind = str  # "heading" | "text" | "code" | "table"


@dataclass
class Block:
    """A unit of a document that the chunker never splits unless it is too big on its own."""

    text: str
    start_line: int
    end_line: int
    kind: BlockKind = "text"
    heading: tuple[str, ...] = ()
    page: int | None = None


class _Headings:
    """The heading path: setting level n drops everything at level ≥ n."""

    def __init__(self) -> None:
        self.levels: list[tuple[int, str]] = []

    def set(self, level: int, title: str) -> None:
        self.levels = [(lv, t) for lv, t in self.levels if lv < level]
        self.levels.append((level, title.strip()))

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.levels)


def _paragraphs(lines: list[str], first_line: int, heading: tuple[str, ...]) -> list[Block]:
    """Blank-line separated runs of lines → text blocks."""
    blocks: list[Block] = []
    start: int | None = None
    for offset, line in enumerate([*lines, ""]):
        if line.strip():
            if start is None:
                start = offset
        elif start is not None:
            text = "\n".join(lines[start:offset]).strip("\n")
            blocks.append(Block(text, first_line + start, first_line + offset - 1, "text", heading))
            start = None
    return blocks


_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")


def parse_markdown(text: str) -> list[Block]:
    """Markdown: ATX and setext headings, fenced code blocks, blank-line paragraphs; YAML front
    matter is left out."""
    lines = text.splitlines()
    headings = _Headings()
    blocks: list[Block] = []
    para: list[str] = []
    para_start = 1
    i = 0
    if lines and lines[0].strip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].strip() in ("---", "...")), None)
        i = end + 1 if end is not None else 0

    def flush() -> None:
        nonlocal para
        if para:
            blocks.extend(_paragraphs(para, para_start, headings.path))
        para = []

    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            end = i + 1
            while end < len(lines) and not lines[end].lstrip().startswith(marker):
                end += 1
            end = min(end, len(lines) - 1)
            blocks.append(
                Block("\n".join(lines[i : end + 1]), i + 1, end + 1, "code", headings.path)
            )
            i = end + 1
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            headings.set(len(atx.group(1)), atx.group(2))
            blocks.append(Block(line.strip(), i + 1, i + 1, "heading", headings.path))
            i += 1
            continue
        underline = _SETEXT.match(lines[i + 1]) if i + 1 < len(lines) else None
        if underline and not para and line.strip() and not line.startswith("    "):
            headings.set(1 if underline.group(1).startswith("=") else 2, line)
            blocks.append(Block(line.strip(), i + 1, i + 2, "heading", headings.path))
            i += 2
            continue
        if not line.strip():
            flush()
        else:
            if not para:
                para_start = i + 1
            para.append(line)
        i += 1
    flush()
    return blocks


_RST_ADORN = re.compile(r"^([=\-~^\"'`#*+:.<>_])\1{2,}\s*$")


def parse_rst(text: str) -> list[Block]:
    """reStructuredText: section titles (underlined, optionally overlined; levels in order of
    first appearance), literal blocks after ``::`` and ``.. code-block::`` as code."""
    lines = text.splitlines()
    headings = _Headings()
    styles: list[str] = []
    blocks: list[Block] = []
    para: list[str] = []
    para_start = 1
    i = 0

    def flush() -> None:
        nonlocal para
        if para:
            blocks.extend(_paragraphs(para, para_start, headings.path))
        para = []

    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        over = _RST_ADORN.match(line)
        if over and i + 2 < len(lines) and _RST_ADORN.match(lines[i + 2]) and lines[i + 1].strip():
            flush()
            style = "o" + line.strip()[0]
            title = lines[i + 1].strip()
            end = i + 3
        elif (
            line.strip()
            and not line.startswith((" ", "\t"))
            and _RST_ADORN.match(nxt)
            and len(nxt.strip()) >= len(line.strip())
            and not para
        ):
            flush()
            style = "u" + nxt.strip()[0]
            title = line.strip()
            end = i + 2
        else:
            style = ""
        if style:
            if style not in styles:
                styles.append(style)
            headings.set(styles.index(style) + 1, title)
            blocks.append(Block(title, i + 1, end, "heading", headings.path))
            i = end
            para_start = i + 1
            continue
        literal = line.rstrip().endswith("::") or line.lstrip().startswith(".. code")
        if literal and line.strip():
            # The directive/intro line plus the indented block after it form one code block.
            para.append(line)
            flush()
            start = i
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
                j += 1
            while j > i + 1 and not lines[j - 1].strip():
                j -= 1
            first = start + 1
            while first < j and not lines[first].strip():
                first += 1
            if first < j:
                code = "\n".join(lines[first:j])
                blocks.append(Block(code, first + 1, j, "code", headings.path))
            i = j
            para_start = i + 1
            continue
        if not line.strip():
            flush()
            i += 1
            para_start = i + 1
            continue
        if not para:
            para_start = i + 1
        para.append(line)
        i += 1
    flush()
    return blocks


_CODE_HEAD = re.compile(
    r"^\s{0,4}(?:export\s+|pub(?:\(crate\))?\s+|public\s+|private\s+|protected\s+|static\s+|"
    r"async\s+|abstract\s+|final\s+)*"
    r"(def|class|function|func|fn|interface|struct|impl|trait|enum|module|type|object)\s+"
    r"([A-Za-z_][\w.$]*)"
)


def parse_code(text: str) -> list[Block]:
    """Source code: blank-line separated blocks; the heading is the enclosing top-level
    definition (def/class/function/fn/...), found by its signature line."""
    lines = text.splitlines()
    blocks: list[Block] = []
    current: tuple[str, ...] = ()
    start: int | None = None
    for offset, line in enumerate([*lines, ""]):
        head = _CODE_HEAD.match(line) if offset < len(lines) else None
        if head and start is not None and not line.startswith((" ", "\t")):
            # A new top-level definition starts a new block even without a blank line.
            blocks.append(_code_block(lines, start, offset, current))
            start = None
        if head:
            signature = f"{head.group(1)} {head.group(2)}"
            if not line.startswith((" ", "\t")):
                current = (signature,)
            elif current:  # a method: keep its class, replace the previous method
                current = (current[0], signature)
        if line.strip():
            if start is None:
                start = offset
        elif start is not None:
            blocks.append(_code_block(lines, start, offset, current))
            start = None
    return blocks


def _code_block(lines: list[str], start: int, end: int, heading: tuple[str, ...]) -> Block:
    return Block("\n".join(lines[start:end]), start + 1, end, "code", heading)


def parse_lines(text: str, kind: BlockKind = "table") -> list[Block]:
    """Data files (csv, json, logs): every non-empty line is a block; the chunker packs them."""
    return [
        Block(line, n, n, kind) for n, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]


class _HTMLBlocks(HTMLParser):
    _BLOCK = frozenset(
        [
            "p",
            "div",
            "li",
            "ul",
            "ol",
            "table",
            "tr",
            "section",
            "article",
            "blockquote",
            "dd",
            "dt",
            "br",
            "figcaption",
            "header",
            "footer",
            "main",
            "body",
        ]
    )
    _SKIP = frozenset(["script", "style", "noscript", "template", "svg", "head", "nav"])
    _VOID = frozenset(
        [
            "area",
            "base",
            "br",
            "col",
            "embed",
            "hr",
            "img",
            "input",
            "link",
            "meta",
            "source",
            "track",
            "wbr",
            "param",
        ]
    )
    _SELF_CLOSING = frozenset(["p", "li", "dt", "dd", "tr", "td", "th", "option"])
    """Elements a sibling of the same name closes (``<p>a<p>b``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.headings = _Headings()
        self.buffer: list[str] = []
        self.buffer_line = 1
        self.skip_depth = 0
        self.open: list[tuple[str, bool]] = []
        """Open elements and whether each hides its content."""
        self.hidden_depth = 0
        self.in_pre = 0
        self.heading_level = 0

    def _flush(self, kind: BlockKind = "text") -> None:
        text = "".join(self.buffer)
        text = text.strip("\n") if kind == "code" else " ".join(text.split())
        end_line = self.getpos()[0]
        if text.strip():
            if kind == "heading":
                self.headings.set(self.heading_level, text)
            self.blocks.append(Block(text, self.buffer_line, end_line, kind, self.headings.path))
        self.buffer = []

    def _track_open(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._VOID:
            return
        if tag in self._SELF_CLOSING and self.open and self.open[-1][0] == tag:
            self._close(tag)
        hides = _hides_content(attrs)
        self.open.append((tag, hides))
        self.hidden_depth += hides

    def _close(self, tag: str) -> None:
        """Close ``tag`` and whatever was left open inside it (HTML forgives missing ends)."""
        if not any(name == tag for name, _ in self.open):
            return
        while self.open:
            name, hides = self.open.pop()
            self.hidden_depth -= hides
            if name == tag:
                return

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._track_open(tag, attrs)
        if tag in self._SKIP:
            self.skip_depth += 1
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._flush()
            self.heading_level = int(tag[1])
        elif tag == "pre":
            self._flush()
            self.in_pre += 1
        elif tag in self._BLOCK and not self.in_pre:
            self._flush()
        elif tag in {"td", "th"}:
            self.buffer.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        self._close(tag)
        if tag in self._SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._flush("heading")
            self.heading_level = 0
        elif tag == "pre":
            self._flush("code")
            self.in_pre = max(0, self.in_pre - 1)
        elif tag in self._BLOCK and not self.in_pre:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.skip_depth or self.hidden_depth:
            return
        if not self.buffer or not "".join(self.buffer).strip():
            self.buffer_line = self.getpos()[0]
        self.buffer.append(data)


_HIDING_STYLE = re.compile(r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\b", re.I)


def _hides_content(attrs: list[tuple[str, str | None]]) -> bool:
    """An element a browser does not show: ``hidden``, or an inline ``display: none`` /
    ``visibility: hidden``. Text hidden so is a classic way to slip instructions to a model."""
    for name, value in attrs:
        if name == "hidden":
            return True
        if name == "style" and value and _HIDING_STYLE.search(value):
            return True
    return False


def parse_html(text: str) -> list[Block]:
    """HTML: visible text by block element, h1–h6 as the heading path, <pre> as code; scripts,
    styles, navigation, ``<template>`` and hidden elements (``hidden``, ``display: none``,
    ``visibility: hidden``) left out. Line numbers are those of the HTML source."""
    parser = _HTMLBlocks()
    parser.feed(text)
    parser.close()
    parser._flush()
    return parser.blocks


def parse_plain(text: str) -> list[Block]:
    return _paragraphs(text.splitlines(), 1, ())

"""A reply's Markdown, rendered by Rich, cheap to stream and cheap to keep.

A finished message is one widget however long it is, so a long conversation mounts and lays
out quickly. While a reply streams, each top-level block (paragraph, list, code fence, table…)
is its own ``MarkdownBlock``: a new fragment re-renders only the last, still-open block, and
complete blocks are never touched again. What one streamed frame costs was measured and cut
where it went (benchmarks/ui.py, README "UI performance"):

- the open block is parsed once per frame by one shared markdown-it parser and Rich draws it
  from those tokens (``parsed_markdown``; ``rich.markdown.Markdown`` builds a new parser for
  every instance, ~0.5 ms, and parses again);
- a ``MarkdownBlock`` renders its lines once per change and asks for a new layout of the
  screen only when its height changed (a new line), not for every frame;
- an open code fence is frozen into pieces of ``FENCE_PIECE_LINES`` complete lines: Rich's
  syntax highlighting costs ~0.5 ms per line per render, so re-drawing a 150-line fence every
  frame took ~70 ms (the pieces look the same; the whole reply is drawn again at its end);
- a streaming reply is laid out with blank headroom below its text, room for about a second of
  new lines (``HEADROOM_LINES``), and its height changes only when the text outgrows it, at most every ``GROW_INTERVAL_S``: each
  change is a layout of the screen and a repaint of the whole scrolled chat view (~12 ms), and
  one per new line was half of the UI's CPU while streaming. New lines fill the blank ones
  with a repaint of those lines alone; a line that finds no room shows at the next change, or
  ``GROW_QUIET_S`` after the text stops coming. The blank lines go when the reply ends.

When the reply ends the blocks fold into a single widget that looks the same.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.strip import Strip
from textual.timer import Timer
from textual.visual import RichVisual, Visual
from textual.widget import Widget

from chatapp.terminal_text import safe_for_terminal

FENCE_PIECE_LINES = 6
"""An open code fence freezes its complete lines in pieces of at least this many."""
HEADROOM_LINES = (3, 8)
"""Blank lines a streaming reply keeps below its text for the next lines to fill: as many as
it has grown per second so far, within these bounds (about one layout a second at any speed)."""
GROW_INTERVAL_S = 0.25
"""While text keeps coming, a streaming reply changes its height at most this often."""
GROW_QUIET_S = 0.05
"""A change of height that waits is made once no text has come for this long."""

_PARSER: Any = None
_TEMPLATES: dict[str, Any] = {}
_CLOSING_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*\n?")


def _parser() -> Any:
    """The one markdown-it parser, with the rules Rich's Markdown uses (CommonMark, tables,
    strikethrough)."""
    global _PARSER
    if _PARSER is None:  # imported on first use: the first frame does not wait for it
        from markdown_it import MarkdownIt

        _PARSER = MarkdownIt("commonmark").enable("table").enable("strikethrough")
    return _PARSER


def _starts(tokens: list[Any]) -> list[int]:
    return [
        token.map[0]
        for token in tokens
        if token.level == 0 and token.nesting in (0, 1) and token.map is not None
    ]


def block_starts(source: str) -> list[int]:
    """First line of every top-level block of ``source`` (0-based)."""
    return _starts(_parser().parse(source))


def _code_theme(dark: bool) -> str:
    return "monokai" if dark else "friendly"


def render_markdown(source: str, dark: bool) -> Any:
    """Markdown as a Rich renderable, code coloured for a dark or a light theme. Control
    characters are shown escaped: Rich and Textual pass ESC sequences in text straight to the
    terminal, so a reply could otherwise clear the screen or retitle the window."""
    from rich.markdown import Markdown as RichMarkdown

    theme = _code_theme(dark)
    text = safe_for_terminal(source).strip("\n")
    return RichMarkdown(text, code_theme=theme, inline_code_theme=theme)


def parsed_markdown(source: str, tokens: list[Any], dark: bool) -> Any:
    """Rich Markdown of ``source`` (already escaped for the terminal) from ``tokens`` that
    ``_parser`` made of it: drawn exactly like ``render_markdown``, without a new parser and a
    second parse. The instance copies the attributes a Markdown made by Rich itself has."""
    from rich.markdown import Markdown as RichMarkdown

    theme = _code_theme(dark)
    template = _TEMPLATES.get(theme)
    if template is None:
        template = _TEMPLATES[theme] = RichMarkdown("", code_theme=theme, inline_code_theme=theme)
    markdown = RichMarkdown.__new__(RichMarkdown)
    markdown.__dict__.update(template.__dict__)
    markdown.markup = source
    markdown.parsed = tokens
    return markdown


def code_piece(fence: Any, dark: bool, *, top: bool, bottom: bool) -> Any:
    """Part of a code block drawn as Rich draws a whole one (``fence``: its markdown-it token),
    with the blank padding line above only on the first piece and below only on the last."""
    from rich.syntax import Syntax

    code = fence.content.rstrip() if bottom else fence.content.removesuffix("\n")
    lexer = fence.info.partition(" ")[0] or "text"
    return Syntax(
        code,
        lexer,
        theme=_code_theme(dark),
        word_wrap=True,
        padding=(int(top), 1, int(bottom), 1),
    )


def laid_out_size() -> Reactive[Size]:
    """``virtual_size`` for a widget whose virtual size changes only by a layout: Textual's own
    asks for a second layout of the whole screen whenever a layout changed it (every new line of
    a streaming reply, ~5 ms each time). Nothing is left to redo: the layout placed everything,
    and a scrollbar that appears or goes asks for its own layout."""
    return Reactive(Size(0, 0), layout=False)


def _open_fence(tokens: list[Any], lines: list[str]) -> Any:
    """The fence token when ``lines`` is one code fence that has not been closed yet."""
    blocks = [t for t in tokens if t.level == 0 and t.nesting in (0, 1)]
    if len(blocks) != 1 or blocks[0].type != "fence":
        return None
    fence = blocks[0]
    marker = fence.markup
    for line in lines[fence.map[0] + 1 :]:
        closing = _CLOSING_FENCE.fullmatch(line)
        if closing and closing.group(1)[0] == marker[0] and len(closing.group(1)) >= len(marker):
            return None
    return fence


@dataclass(eq=False)
class _Block:
    """One top-level block of a streaming reply (or a whole finished text), and its lines."""

    source: str
    """Markdown, escaped for the terminal (``whole``: the reply as stored, escaped on drawing)."""
    tokens: list[Any] | None = None
    fence: Any = None
    """For a piece of a code fence: its markdown-it token (drawn with Syntax, not Markdown)."""
    top: bool = True
    bottom: bool = True
    gap: bool = True
    """A blank line follows (the space between blocks; none between pieces of one fence)."""
    whole: bool = False
    lines: list[Strip] | None = None
    key: tuple[Any, ...] = ()


class MarkdownBody(Widget):
    """The body of an assistant message: one widget that draws its blocks' lines, each block
    rendered once per change. A streamed fragment re-renders the open block and repaints its
    lines alone; a layout of the screen is asked for only when the number of lines changed."""

    DEFAULT_CSS = "MarkdownBody { height: auto; }"
    virtual_size = laid_out_size()

    def __init__(self, text: str = "", *, streaming: bool = False, classes: str = "") -> None:
        super().__init__(classes=classes)
        self.text = text
        self.streaming = streaming
        self._done: list[_Block] = []
        """Complete blocks (while streaming), or the whole text."""
        self._tail: _Block | None = None
        """The open (last) block and anything after it, while streaming."""
        self._continued = False
        """The tail is the rest of a code fence whose first lines are frozen above it."""
        self._lines: list[Strip] | None = None
        self._tail_at = 0
        """Where the tail's lines start in ``_lines``."""
        self._key: tuple[Any, ...] = ()
        self._held = 0
        """The height a streaming reply is laid out at: its lines and the headroom below."""
        self._grown_at = 0.0
        self._appended_at = 0.0
        self._first_appended_at = 0.0
        self._grow_timer: Timer | None = None
        if streaming:
            source = safe_for_terminal(text)
            self._tail = _Block(source, _parser().parse(source) if source else [])
        else:
            self._done = [_Block(text, whole=True, gap=False)]

    def _dark(self) -> bool:
        return self.app.current_theme.dark if self.is_attached else True

    def _drawable(self, block: _Block, dark: bool) -> Any:
        if block.whole:
            return render_markdown(block.source, dark)
        if block.fence is not None:
            return code_piece(block.fence, dark, top=block.top, bottom=block.bottom)
        tokens = block.tokens if block.tokens is not None else _parser().parse(block.source)
        return parsed_markdown(block.source, tokens, dark)

    def _block_lines(self, block: _Block, width: int, key: tuple[Any, ...]) -> list[Strip]:
        if block.lines is None or block.key != key:
            visual = RichVisual(self, self._drawable(block, key[2]))
            block.lines = Visual.to_strips(self, visual, width, None, self.visual_style)
            block.key = key
        return block.lines

    def _lines_for(self, width: int) -> list[Strip]:
        key = (width, self.visual_style, self._dark())
        if self._lines is None or key != self._key:
            blank = Strip.blank(width, self.visual_style.rich_style)
            lines: list[Strip] = []
            for block in self._done:
                lines.extend(self._block_lines(block, width, key))
                if block.gap:
                    lines.append(blank)
            self._tail_at = len(lines)
            if self._tail is not None:
                lines.extend(self._block_lines(self._tail, width, key))
            if self._key and key[0] != self._key[0]:
                self._held = 0  # another width: the headroom is counted afresh
            self._lines, self._key = lines, key
        return self._lines

    def _redraw(self, *, new_blocks: bool) -> None:
        """Re-render what changed (the tail's lines, and any blocks it completed) and repaint
        them; a new height waits for its turn (``_grow``)."""
        width = self.size.width
        lines = self._lines
        if lines is None or not width or self._key[0] != width:
            self._lines = None
            self.refresh(layout=True)
            return
        assert self._tail is not None
        old_count, start = len(lines), self._tail_at
        if new_blocks:  # complete blocks keep the lines they have drawn; new ones draw here
            self._lines = None
            lines = self._lines_for(width)
        else:
            self._tail.lines = None
            del lines[start:]
            lines.extend(self._block_lines(self._tail, width, self._key))
        self.refresh(Region(0, start, width, max(len(lines), old_count) - start))
        if len(lines) > self.size.height:
            self._grow()

    def _grow(self) -> None:
        """Lay the reply out at its new height now, or when it is its turn."""
        now = time.monotonic()
        if self._grow_timer is not None:
            return
        due = min(self._grown_at + GROW_INTERVAL_S, self._appended_at + GROW_QUIET_S)
        if now < due:
            self._grow_timer = self.set_timer(due - now, self._grow_due)
            return
        self._grown_at = now
        self.refresh(layout=True)

    def _grow_due(self) -> None:
        self._grow_timer = None
        if self._lines is not None and len(self._lines) > self.size.height:
            self._grow()

    @property
    def settled(self) -> bool:
        """All the text is shown: no change of height is waiting (a streaming reply may show
        blank headroom below its text; a finished one is exactly as tall as its text)."""
        count, height = len(self._lines or ()), self.size.height
        fits = count <= height if self._tail is not None else count == height
        return self._grow_timer is None and fits

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        count = len(self._lines_for(width))
        if self._tail is None:
            return count
        if count > self._held:
            self._held = count + self._headroom(count)
        return self._held

    def _headroom(self, count: int) -> int:
        low, high = HEADROOM_LINES
        elapsed = self._appended_at - self._first_appended_at
        per_second = count / elapsed if elapsed > 0 else 0.0
        return max(low, min(high, round(per_second)))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        lines = self._lines_for(width)
        if y < len(lines):
            return lines[y]
        return Strip.blank(width, self.visual_style.rich_style)

    def _piece(self, source: str, tokens: list[Any], continued: bool) -> _Block:
        if continued:
            blocks = [t for t in tokens if t.level == 0 and t.nesting in (0, 1)]
            if blocks and blocks[0].type == "fence":
                return _Block(source, tokens, fence=blocks[0], top=False)
        return _Block(source, tokens)

    async def append(self, fragment: str) -> None:
        """Add streamed text; only the open block (and any blocks it completed) re-render."""
        self.text += fragment
        if self._tail is None:  # finished meanwhile: the stored text is what is shown
            return
        self._appended_at = time.monotonic()
        if not self._first_appended_at:
            self._first_appended_at = self._appended_at
        tail = self._tail.source + safe_for_terminal(fragment)
        parser = _parser()
        tokens = parser.parse(tail)
        starts = _starts(tokens)
        done: list[_Block] = []
        if len(starts) > 1:  # the blocks before the last are complete: drawn once, here
            lines = tail.splitlines(keepends=True)
            for start, end in pairwise(starts):
                piece = "".join(lines[start:end])
                done.append(self._piece(piece, parser.parse(piece), self._continued))
                self._continued = False
            tail = "".join(lines[starts[-1] :])
            tokens = parser.parse(tail)
        frozen, tail, tokens = self._freeze_code(tail, tokens)
        done.extend(frozen)
        self._tail = self._piece(tail, tokens, self._continued)
        self._done.extend(done)
        if self.is_attached:
            self._redraw(new_blocks=bool(done))

    def _freeze_code(self, tail: str, tokens: list[Any]) -> tuple[list[_Block], str, list[Any]]:
        """When the open block is a code fence with enough complete lines, they become a piece
        of their own (drawn once) and only the rest stays open: (pieces, tail, its tokens)."""
        unchanged: tuple[list[_Block], str, list[Any]] = ([], tail, tokens)
        lines = tail.splitlines(keepends=True)
        fence = _open_fence(tokens, lines)
        if fence is None:
            return unchanged
        first = fence.map[0]
        code = lines[first + 1 :]
        complete = sum(1 for line in code if line.endswith("\n"))
        if complete < FENCE_PIECE_LINES:
            return unchanged
        opening = lines[first]
        source = opening + "".join(code[:complete])
        frozen = _parser().parse(source)
        piece_fence = next((t for t in frozen if t.type == "fence"), None)
        if piece_fence is None:
            return unchanged
        piece = _Block(source, frozen, fence=piece_fence, top=not self._continued, bottom=False)
        piece.gap = False
        self._continued = True
        rest = opening + "".join(code[complete:])
        return [piece], rest, _parser().parse(rest)

    async def finish(self, text: str | None = None) -> None:
        """The reply is complete: draw it as one block (``text``: the stored text)."""
        if text is not None:
            self.text = text
        self.streaming = False
        if self._grow_timer is not None:
            self._grow_timer.stop()
            self._grow_timer = None
        self._tail = None
        self._done = [_Block(self.text, whole=True, gap=False)]
        self._lines = None
        if self.is_attached:
            self.refresh(layout=True)

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self, _theme: Any) -> None:
        # Code colours follow the theme's light/dark mode (the key of the drawn lines).
        self._lines = None
        self.refresh(layout=True)

"""A reply's Markdown, rendered by Rich, cheap to stream and cheap to keep.

A finished message is one widget however long it is, so a long conversation mounts and lays
out quickly. While a reply streams, each top-level block (paragraph, list, code fence, table…)
is its own line-of-widgets entry: a new fragment re-renders only the last, still-open block,
and complete blocks are never touched again. When the reply ends the blocks fold into a single
widget that looks the same.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from chatapp.terminal_text import safe_for_terminal

_PARSER: Any = None


def block_starts(source: str) -> list[int]:
    """First line of every top-level block of ``source`` (0-based)."""
    global _PARSER
    if _PARSER is None:  # imported on first use: the first frame does not wait for it
        from markdown_it import MarkdownIt

        _PARSER = MarkdownIt("commonmark").enable("table").enable("strikethrough")
    return [
        token.map[0]
        for token in _PARSER.parse(source)
        if token.level == 0 and token.nesting in (0, 1) and token.map is not None
    ]


def render_markdown(source: str, dark: bool) -> Any:
    """Markdown as a Rich renderable, code coloured for a dark or a light theme. Control
    characters are shown escaped: Rich and Textual pass ESC sequences in text straight to the
    terminal, so a reply could otherwise clear the screen or retitle the window."""
    from rich.markdown import Markdown as RichMarkdown

    theme = "monokai" if dark else "friendly"
    text = safe_for_terminal(source).strip("\n")
    return RichMarkdown(text, code_theme=theme, inline_code_theme=theme)


class MarkdownBody(Vertical):
    """The body of an assistant message."""

    DEFAULT_CSS = """
    MarkdownBody { height: auto; }
    MarkdownBody > .md-block { height: auto; margin-bottom: 1; }
    MarkdownBody > .md-block:last-child { margin-bottom: 0; }
    """

    def __init__(self, text: str = "", *, streaming: bool = False, classes: str = "") -> None:
        super().__init__(classes=classes)
        self.text = text
        self.streaming = streaming
        self._source_lines: list[str] = text.splitlines(keepends=True)
        self._tail_line = 0
        """Where the last (still open) block starts, in lines of ``text``."""
        self._tail: Static | None = None

    def _rich(self, source: str) -> Any:
        return render_markdown(source, self.app.current_theme.dark if self.is_attached else True)

    def compose(self) -> ComposeResult:
        if self.streaming:
            self._tail = Static(self._rich(self.text), classes="md-block")
            yield self._tail
        else:
            yield Static(self._rich(self.text), classes="md-block")

    async def append(self, fragment: str) -> None:
        """Add streamed text; only the open block (and any blocks it completed) re-render."""
        self.text += fragment
        if not self.is_attached:  # the app is closing: keep the text, draw nothing
            return
        self._source_lines = self.text.splitlines(keepends=True)
        tail_source = "".join(self._source_lines[self._tail_line :])
        starts = block_starts(tail_source)
        if self._tail is None:
            self._tail = Static(classes="md-block")
            await self.mount(self._tail)
        if len(starts) <= 1:
            self._tail.update(self._rich(tail_source))
            return
        tail_lines = tail_source.splitlines(keepends=True)
        pieces = ["".join(tail_lines[a:b]) for a, b in pairwise(starts)]
        self._tail.update(self._rich(pieces[0]))
        finished = [Static(self._rich(piece), classes="md-block") for piece in pieces[1:]]
        self._tail = Static(self._rich("".join(tail_lines[starts[-1] :])), classes="md-block")
        self._tail_line += starts[-1]
        with self.app.batch_update():
            if self.is_attached:
                await self.mount_all([*finished, self._tail])

    async def finish(self, text: str | None = None) -> None:
        """The reply is complete: fold the blocks into one widget (``text``: the stored text)."""
        if text is not None:
            self.text = text
        self.streaming = False
        self._tail = None
        if not self.is_attached:
            return
        with self.app.batch_update():
            await self.remove_children()
            if self.is_attached:  # the app may have begun closing meanwhile
                await self.mount(Static(self._rich(self.text), classes="md-block"))

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self, _theme: Any) -> None:
        # Code colours follow the theme's light/dark mode.
        if not self.streaming:
            self.query_one(Static).update(self._rich(self.text))

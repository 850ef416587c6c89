"""One message of the chat: who said it, its state, its branch position, and its text.

Assistant replies render as Markdown (code blocks highlighted, see ``markdown_body``) and grow
by appending while they stream; a thinking model's reasoning sits folded above its answer
(``reasoning``, ``t`` unfolds it); user messages render as plain text so brackets and asterisks
show as typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message as TextualMessage
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from chatapp.domain import Source
from chatapp.terminal_text import safe_for_terminal
from chatapp.ui.widgets.markdown_body import MarkdownBody, laid_out_size, render_markdown
from chatapp.ui.widgets.reasoning import TOGGLE_KEY, ReasoningBlock, render_reasoning

if TYPE_CHECKING:
    from chatapp.storage import Message

USER_DISPLAY_CHARS = 8_000
"""Longer user messages show their start and a note; the whole text is kept and copied."""


@dataclass(frozen=True)
class Branch:
    """Where a message sits among its alternatives (edits / regenerations): 1-based."""

    position: int = 1
    count: int = 1


def code_blocks(markdown: str) -> list[str]:
    """The fenced and indented code blocks of a Markdown text, in order."""
    from markdown_it import MarkdownIt

    return [
        token.content
        for token in MarkdownIt("gfm-like").parse(markdown)
        if token.type in ("fence", "code_block")
    ]


def source_label(source: Source, number: int) -> str:
    """A one-line label for a cited source: its number, file and page."""
    name = source.shown_path or "source"
    where = f"p.{source.page}" if source.page is not None else ""
    return safe_for_terminal(f"[{number}] {name}" + (f" ({where})" if where else ""))


def reasoning_seconds(message: Message | None) -> float | None:
    """How long a stored reply's model thought before answering (None: unknown)."""
    stats = (message.stats or {}) if message is not None else {}
    value = stats.get("reasoning_s")
    return float(value) if isinstance(value, int | float) and value > 0 else None


class MessageHeader(Static):
    """The line above a streaming message (a finished one draws its own); its ‹ › arrows
    switch branches when clicked."""

    def action_branch(self, delta: int) -> None:
        parent = self.parent
        if isinstance(parent, MessageWidget):
            parent.post_message(MessageWidget.BranchRequested(parent, delta))


class MessageWidget(Widget, can_focus=True):
    """A stored message (or the reply being streamed, which has no id yet).

    A finished message is a single widget that draws its header and body itself, so a long
    conversation lays out quickly; the streaming reply (and a reply with a sources panel) keeps
    child widgets: a header, a Markdown body that grows block by block, the sources.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy message"),
        Binding("k", "copy_code", "Copy code block"),
        Binding("e", "edit", "Edit and resend"),
        Binding("r", "regenerate", "Regenerate"),
        Binding(TOGGLE_KEY, "toggle_reasoning", "Show / hide thinking"),
        Binding("left,[", "branch(-1)", "Previous branch"),
        Binding("right,]", "branch(1)", "Next branch"),
    ]

    class BranchRequested(TextualMessage):
        """The user asked to see another branch at this message (delta -1 or +1)."""

        def __init__(self, widget: MessageWidget, delta: int) -> None:
            super().__init__()
            self.widget = widget
            self.delta = delta

    class ActionRequested(TextualMessage):
        """The user asked to copy / edit / regenerate from this message."""

        def __init__(self, widget: MessageWidget, action: str) -> None:
            super().__init__()
            self.widget = widget
            self.action = action

    status: reactive[str] = reactive("complete")
    branch: reactive[Branch] = reactive(Branch)
    virtual_size = laid_out_size()

    def __init__(
        self,
        role: str,
        content: str = "",
        *,
        message: Message | None = None,
        branch: Branch | None = None,
        model_name: str | None = None,
        error: str | None = None,
        sources_widget: Any = None,
    ) -> None:
        classes = f"message {role}"
        super().__init__(id=f"msg-{message.id}" if message is not None else None, classes=classes)
        self.role = role
        self.message = message
        self.content = content
        self.model_name = model_name
        self.error = error
        self._sources_widget = sources_widget
        self._code_index = 0
        self._body: MarkdownBody | None = None
        self.reasoning = (message.reasoning or "") if message is not None else ""
        self.reasoning_seconds = reasoning_seconds(message)
        self.reasoning_expanded = False
        self._live_reasoning: ReasoningBlock | None = None
        self.set_reactive(MessageWidget.status, message.status if message else "complete")
        self.set_reactive(MessageWidget.branch, branch or Branch())

    @property
    def message_id(self) -> int | None:
        return self.message.id if self.message is not None else None

    @property
    def is_flat(self) -> bool:
        """Drawn as one widget (finished, no sources panel)."""
        return self.message is not None and self._sources_widget is None

    def compose(self) -> ComposeResult:
        if not self.is_flat:
            yield from self._parts()

    def _parts(self) -> list[Widget]:
        parts: list[Widget] = [MessageHeader(self.header_text(), classes="message-header")]
        if self.role == "assistant" and self.reasoning:
            block = ReasoningBlock(self.reasoning, self.reasoning_seconds, live=False)
            block.expanded = self.reasoning_expanded
            parts.append(block)
        if self.role == "assistant":
            parts.append(
                MarkdownBody(self.content, streaming=self.message is None, classes="message-body")
            )
        else:
            parts.append(Static(Text(self._user_display()), classes="message-body"))
        if self.error:
            parts.append(Static(self._error_text(), classes="message-error"))
        if self._sources_widget is not None:
            parts.append(self._sources_widget)
        return parts

    def on_mount(self) -> None:
        # Code colours follow the theme's light/dark mode.
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self, _theme: Any) -> None:
        if self.is_flat:
            self.refresh(layout=True)

    def render(self) -> RenderableType:
        if not self.is_flat:
            return ""
        body: RenderableType
        if self.role == "assistant":
            body = render_markdown(self.content, self.app.current_theme.dark)
        else:
            body = Text(self._user_display())
        parts: list[RenderableType] = [self.header_text()]
        if self.reasoning:
            expanded = self.reasoning_expanded
            parts.append(
                render_reasoning(
                    self.reasoning, self.reasoning_seconds, live=False, expanded=expanded
                )
            )
        parts.append(body)
        if self.error:
            parts.append(self._error_text())
        return Group(*parts)

    def _user_display(self) -> str:
        # Pasted text can hold ESC sequences, which Textual would pass on to the terminal.
        text = safe_for_terminal(self.content)
        if len(text) <= USER_DISPLAY_CHARS:
            return text
        hidden = len(text) - USER_DISPLAY_CHARS
        return f"{text[:USER_DISPLAY_CHARS]}\n… ({hidden:,} more characters, kept in full)"

    def _theme_color(self, name: str, fallback: str) -> str:
        theme = self.app.current_theme if self.is_attached else None
        return str(getattr(theme, name, None) or fallback)

    def _error_text(self) -> Text:
        error = safe_for_terminal(str(self.error))
        return Text(f"error: {error}", style=self._theme_color("error", "red"))

    def header_text(self) -> Text:
        """Who wrote it, its state, and ‹ n/m › (clickable) when it has alternatives."""
        who = "You" if self.role == "user" else (self.model_name or "Assistant")
        header = Text(safe_for_terminal(who), style="bold")
        if self.status == "interrupted":
            header.append(" · interrupted", style=self._theme_color("warning", "yellow"))
        elif self.status == "error":
            header.append(" · error", style=self._theme_color("error", "red"))
        elif self.status == "streaming":
            header.append(" · …", style="dim")
        if self.branch.count > 1:
            header.append("   ")
            header.append("‹", style=Style(bold=True, meta={"@click": "branch(-1)"}))
            header.append(f" {self.branch.position}/{self.branch.count} ")
            header.append("›", style=Style(bold=True, meta={"@click": "branch(1)"}))
        return header

    def _refresh_header(self) -> None:
        if self.is_flat:
            self.refresh(layout=True)
            return
        # A message removed meanwhile (its conversation was closed or deleted) has no header.
        for header in self.query(MessageHeader):
            header.update(self.header_text())

    def watch_status(self) -> None:
        self._refresh_header()

    def watch_branch(self) -> None:
        self._refresh_header()

    # -- streaming ------------------------------------------------------------------------

    async def append(self, text: str) -> None:
        """Add streamed text at the end (only the open Markdown block re-renders)."""
        self.content += text
        body = self._body
        if body is None or body.parent is not self:
            found = self.query(MarkdownBody)
            body = self._body = found.first() if found else None
        if body is not None:
            await body.append(text)

    async def append_reasoning(self, text: str, seconds: float | None) -> None:
        """Add streamed reasoning (shown dimmed above the answer until the answer begins)."""
        self.reasoning += text
        self.reasoning_seconds = seconds
        if self._live_reasoning is not None:
            self._live_reasoning.grow(text, seconds)
            return
        block = self._live_reasoning = ReasoningBlock(self.reasoning, seconds, live=True)
        headers = self.query(MessageHeader)
        if headers:
            await self.mount(block, after=headers.first())
        else:
            await self.mount(block, before=0)

    def end_reasoning(self, seconds: float | None) -> None:
        """The answer began: the reasoning folds to one line."""
        block, self._live_reasoning = self._live_reasoning, None
        if block is not None:
            self.reasoning_seconds = seconds
            block.end(seconds)

    def action_toggle_reasoning(self) -> None:
        """Unfold the reasoning (or fold it again)."""
        if not self.reasoning:
            return
        self.reasoning_expanded = not self.reasoning_expanded
        if self.is_flat:
            self.refresh(layout=True)
            return
        for block in self.query(ReasoningBlock):
            block.set_expanded(self.reasoning_expanded)

    async def finish(
        self,
        message: Message,
        branch: Branch,
        error: str | None = None,
        sources_widget: Any = None,
    ) -> None:
        """The reply was stored: adopt its id, text, status and branch; fold into one widget
        (or, with sources, a header, the body and the sources panel)."""
        self.message = message
        self.content = message.content
        self.reasoning = message.reasoning or self.reasoning
        self.reasoning_seconds = reasoning_seconds(message) or self.reasoning_seconds
        self.id = f"msg-{message.id}"
        self.error = error or message.error
        self._sources_widget = sources_widget
        self.set_reactive(MessageWidget.branch, branch)
        self.set_reactive(MessageWidget.status, message.status)
        self._live_reasoning = None
        if not self.is_attached:
            return
        with self.app.batch_update():
            await self.remove_children()
            if not self.is_flat and self.is_attached:
                await self.mount_all(self._parts())
        self.refresh(layout=True)

    # -- actions (bubble to the chat screen, which owns the store) -------------------------

    def action_copy(self) -> None:
        self.post_message(self.ActionRequested(self, "copy"))

    def action_copy_code(self) -> None:
        self.post_message(self.ActionRequested(self, "copy_code"))

    def action_edit(self) -> None:
        self.post_message(self.ActionRequested(self, "edit"))

    def action_regenerate(self) -> None:
        self.post_message(self.ActionRequested(self, "regenerate"))

    def action_branch(self, delta: int) -> None:
        self.post_message(self.BranchRequested(self, delta))

    def next_code_block(self) -> tuple[str, int, int] | None:
        """The next code block to copy (cycling): (code, 1-based number, how many)."""
        blocks = code_blocks(self.content)
        if not blocks:
            return None
        index = self._code_index % len(blocks)
        self._code_index += 1
        return blocks[index], index + 1, len(blocks)

"""One message of the chat: who said it, its state, its branch position, and its text.

Assistant replies render as Markdown (code blocks highlighted, see ``markdown_body``) and grow
by appending while they stream; user messages render as plain text so brackets and asterisks
show as typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message as TextualMessage
from textual.reactive import reactive
from textual.widgets import Static

from chatapp.ui.widgets.markdown_body import MarkdownBody

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


def source_label(source: dict[str, Any], number: int) -> str:
    """A one-line label for a cited source, whatever fields the retriever stored."""
    name = next(
        (str(source[k]) for k in ("title", "source", "path", "file", "id") if source.get(k)),
        "source",
    )
    where = source.get("page") or source.get("location")
    return f"[{number}] {name}" + (f" ({where})" if where else "")


class MessageHeader(Static):
    """The line above a message; its ‹ › arrows switch branches when clicked."""

    def _request(self, delta: int) -> None:
        parent = self.parent
        if isinstance(parent, MessageWidget):
            parent.post_message(MessageWidget.BranchRequested(parent, delta))

    def action_prev_branch(self) -> None:
        self._request(-1)

    def action_next_branch(self) -> None:
        self._request(1)


class MessageWidget(Vertical, can_focus=True):
    """A stored message (or the reply being streamed, which has no id yet)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy message"),
        Binding("k", "copy_code", "Copy code block"),
        Binding("e", "edit", "Edit and resend"),
        Binding("r", "regenerate", "Regenerate"),
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
        self.set_reactive(MessageWidget.status, message.status if message else "complete")
        self.set_reactive(MessageWidget.branch, branch or Branch())

    @property
    def message_id(self) -> int | None:
        return self.message.id if self.message is not None else None

    def compose(self) -> ComposeResult:
        yield MessageHeader(self._header_text(), classes="message-header")
        if self.role == "assistant":
            yield MarkdownBody(self.content, streaming=self.message is None, classes="message-body")
        else:
            yield Static(self._user_display(), classes="message-body", markup=False)
        if self.error:
            yield Static(Content(f"error: {self.error}"), classes="message-error")
        if self._sources_widget is not None:
            yield self._sources_widget

    def _user_display(self) -> str:
        text = self.content
        if len(text) <= USER_DISPLAY_CHARS:
            return text
        hidden = len(text) - USER_DISPLAY_CHARS
        return f"{text[:USER_DISPLAY_CHARS]}\n… ({hidden:,} more characters, kept in full)"

    def _header_text(self) -> Content:
        who = "You" if self.role == "user" else (self.model_name or "Assistant")
        parts: list[Content | tuple[str, str] | str] = [(who, "bold")]
        if self.status == "interrupted":
            parts.append((" · interrupted", "$warning"))
        elif self.status == "error":
            parts.append((" · error", "$error"))
        elif self.status == "streaming":
            parts.append((" · …", "dim"))
        if self.branch.count > 1:
            parts.append("   ")
            parts.append(Content.from_markup("[@click=prev_branch]‹[/]"))
            parts.append(f" {self.branch.position}/{self.branch.count} ")
            parts.append(Content.from_markup("[@click=next_branch]›[/]"))
        return Content.assemble(*parts)

    def _refresh_header(self) -> None:
        # A message removed meanwhile (its conversation was closed or deleted) has no header.
        for header in self.query(MessageHeader):
            header.update(self._header_text())

    def watch_status(self) -> None:
        self._refresh_header()

    def watch_branch(self) -> None:
        self._refresh_header()

    # -- streaming ------------------------------------------------------------------------

    async def append(self, text: str) -> None:
        """Add streamed text at the end (only the last Markdown block is re-parsed)."""
        self.content += text
        await self.query_one(MarkdownBody).append(text)

    async def finish(self, message: Message, branch: Branch, error: str | None = None) -> None:
        """The reply was stored: adopt its id, final status and branch position."""
        await self.query_one(MarkdownBody).finish(message.content)
        if not self.is_attached:
            return
        self.message = message
        self.content = message.content
        self.id = f"msg-{message.id}"
        self.error = error or message.error
        self.branch = branch
        self.status = message.status
        if self.error and self.is_attached:
            await self.mount(Static(Content(f"error: {self.error}"), classes="message-error"))

    def show_sources(self, widget: Any) -> None:
        if widget is not None:
            self.mount(widget)

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

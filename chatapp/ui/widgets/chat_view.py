"""The scrolling list of messages of one conversation branch, mounted lazily.

Only the last ``PAGE`` messages are mounted when a conversation opens, so a 500-message chat opens
as fast as a short one; scrolling to the top (or clicking the marker) mounts the page before.
While a reply streams the view stays anchored to the bottom unless the user scrolls away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import events
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from chatapp.terminal_text import safe_for_terminal
from chatapp.ui.widgets.markdown_body import laid_out_size
from chatapp.ui.widgets.message import Branch, MessageWidget

if TYPE_CHECKING:
    from chatapp.storage import Message

PAGE = 12
"""Messages mounted at a time."""
FILL_CHECK_S = 0.5

EMPTY_HINT = (
    "Start a conversation: type below and press Enter.\n\n"
    "Shift+Enter or Ctrl+J adds a line · Ctrl+P lists every command · F1 shows all keys"
)


class EarlierMessages(Static):
    """Stands in for the messages not mounted yet; clicking it mounts the previous page."""

    def show_count(self, count: int) -> None:
        noun = "message" if count == 1 else "messages"
        self.update(f"↑ {count} earlier {noun} (scroll up or click to show)")

    async def on_click(self) -> None:
        view = self.parent
        if isinstance(view, ChatView):
            await view.load_earlier()


class Notice(Static):
    """A line from chatapp itself (not part of the conversation): context trimming, errors."""


class ChatView(VerticalScroll, can_focus=False):
    """Messages of the shown branch, oldest at the top."""

    virtual_size = laid_out_size()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.thread: list[Message] = []
        self.branches: dict[int, Branch] = {}
        self.first_shown = 0
        self.sources_widget: Callable[[Message], Any] | None = None
        self._loading_earlier = False

    # -- building -------------------------------------------------------------------------

    def widget_for(self, message: Message) -> Widget:
        """A message's widget: a folded call for a ``tool`` row, else a MessageWidget."""
        if message.role == "tool":
            from chatapp.ui.widgets.tool_call import ToolCallWidget

            return ToolCallWidget.from_row(message)
        return self._message_widget(message)

    def _widgets(self, messages: list[Message]) -> list[Widget]:
        # A step that only called tools has no text of its own: its calls stand for it.
        return [
            self.widget_for(m)
            for m in messages
            if not (m.role == "assistant" and m.tool_calls and not m.content.strip())
        ]

    def _message_widget(self, message: Message) -> MessageWidget:
        model = (message.model or {}).get("name") if message.role == "assistant" else None
        sources = None
        if message.role == "assistant" and message.sources and self.sources_widget is not None:
            sources = self.sources_widget(message)
        return MessageWidget(
            message.role,
            message.content,
            message=message,
            branch=self.branches.get(message.id),
            model_name=model,
            error=message.error,
            sources_widget=sources,
        )

    async def show_thread(self, thread: list[Message], branches: dict[int, Branch]) -> None:
        """Replace what is shown with the last page of ``thread``."""
        self.thread = list(thread)
        self.branches = dict(branches)
        self.first_shown = max(0, len(thread) - PAGE)
        children: list[Widget] = []
        if self.first_shown:
            marker = EarlierMessages(classes="earlier")
            marker.show_count(self.first_shown)
            children.append(marker)
        if not thread:
            children.append(Static(EMPTY_HINT, classes="empty-hint", markup=False))
        children.extend(self._widgets(thread[self.first_shown :]))
        with self.app.batch_update():
            await self.remove_children()
            await self.mount_all(children)
        self.anchor()
        if self.first_shown:
            # A page of short messages may not fill the view, leaving nothing to scroll up by;
            # look once the Markdown bodies have been laid out.
            self.set_timer(FILL_CHECK_S, self._fill_viewport)

    async def _fill_viewport(self) -> None:
        if self.first_shown and self.max_scroll_y == 0:
            await self.load_earlier()

    async def load_earlier(self) -> None:
        """Mount the page before the first shown message, keeping the view where it was."""
        if self.first_shown == 0 or self._loading_earlier:
            return
        self._loading_earlier = True
        try:
            start = max(0, self.first_shown - PAGE)
            widgets = self._widgets(self.thread[start : self.first_shown])
            first = next(c for c in self.children if not isinstance(c, EarlierMessages))
            height_before = self.virtual_size.height
            y_before = self.scroll_y
            await self.mount_all(widgets, before=first)
            self.first_shown = start
            marker = self.query(EarlierMessages)
            if start == 0:
                await marker.remove()
            else:
                marker.first().show_count(start)

            def keep_position() -> None:
                grown = self.virtual_size.height - height_before
                self.scroll_to(y=y_before + grown, animate=False, immediate=True)

            self.call_after_refresh(keep_position)
        finally:
            self._loading_earlier = False

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 < old_value and self.first_shown:
            self.call_later(self.load_earlier)

    async def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.scroll_y <= 0 and self.first_shown:
            await self.load_earlier()

    # -- changing -------------------------------------------------------------------------

    async def add_message(self, message: Message, branch: Branch | None = None) -> MessageWidget:
        if branch is not None:
            self.branches[message.id] = branch
        self.thread.append(message)
        await self.query(".empty-hint").remove()
        widget = self._message_widget(message)
        await self.mount(widget)
        return widget

    async def add_tool_call(self, widget: Widget, before: Widget | None = None) -> None:
        """Mount a call made while a reply streams (before the reply still being written)."""
        await self.query(".empty-hint").remove()
        if before is not None and before.parent is self:
            await self.mount(widget, before=before)
        else:
            await self.mount(widget)
        self.anchor()

    async def add_reply(self, model_name: str | None) -> MessageWidget:
        """Mount an empty assistant message that the stream will fill."""
        await self.query(".empty-hint").remove()
        widget = MessageWidget("assistant", model_name=model_name)
        widget.set_reactive(MessageWidget.status, "streaming")
        await self.mount(widget)
        self.anchor()
        return widget

    async def add_notice(self, text: str, *, error: bool = False) -> Notice:
        # A notice can quote a file name, a server's error or a document: shown, never obeyed.
        notice = Notice(
            Content(safe_for_terminal(text)), classes="notice error" if error else "notice"
        )
        await self.query(".empty-hint").remove()
        await self.mount(notice)
        return notice

    async def truncate_after(self, message_id: int | None) -> None:
        """Remove everything shown after ``message_id`` (None: after nothing, i.e. all), used
        when a regeneration or an edit starts a new branch at that point."""
        if message_id is None:
            keep = 0
        else:
            ids = [m.id for m in self.thread]
            keep = ids.index(message_id) + 1 if message_id in ids else len(ids)
        self.thread = self.thread[:keep]
        doomed: list[Widget] = []
        seen = message_id is None
        for child in self.children:
            if isinstance(child, EarlierMessages):
                continue
            if seen:
                doomed.append(child)
            elif isinstance(child, MessageWidget) and child.message_id == message_id:
                seen = True
        if not seen:
            # The branch point is on a page not mounted: nothing mounted survives.
            doomed = [c for c in self.children if not isinstance(c, EarlierMessages)]
        self.first_shown = min(self.first_shown, keep)
        if self.first_shown == 0:
            doomed.extend(self.query(EarlierMessages))
        else:
            self.query_one(EarlierMessages).show_count(self.first_shown)
        if doomed:
            await self.remove_children(doomed)

    def message_widgets(self) -> list[MessageWidget]:
        return list(self.query(MessageWidget))

    def widget_for_id(self, message_id: int) -> MessageWidget | None:
        found = self.query(f"#msg-{message_id}")
        return found.first() if found else None  # type: ignore[return-value]

    def set_branch(self, message_id: int, branch: Branch) -> None:
        self.branches[message_id] = branch
        widget = self.widget_for_id(message_id)
        if widget is not None:
            widget.branch = branch

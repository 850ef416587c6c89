"""The conversation list: newest first, with a filter box that searches titles and text."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from chatapp.terminal_text import safe_for_terminal

if TYPE_CHECKING:
    from chatapp.storage import Conversation


def conversation_label(conversation: Conversation) -> Content:
    title = safe_for_terminal(conversation.title or "Untitled")
    count = conversation.message_count
    noun = "message" if count == 1 else "messages"
    return Content.assemble(title, "\n", (f"{count} {noun}", "dim"))


class ConversationList(OptionList):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete", "delete_conversation", "Delete", show=False)
    ]

    def action_delete_conversation(self) -> None:
        if self.highlighted is not None:
            option = self.get_option_at_index(self.highlighted)
            if option.id:
                self.post_message(ConversationSidebar.DeleteRequested(int(option.id)))


class ConversationSidebar(Vertical):
    """Posts ``Selected`` when a conversation is chosen and ``FilterChanged`` as the user types."""

    class Selected(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    class FilterChanged(Message):
        def __init__(self, query: str) -> None:
            super().__init__()
            self.query = query

    class DeleteRequested(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.current_id: int | None = None

    def compose(self) -> ComposeResult:
        yield from ()

    async def fill(self) -> None:
        """Mount the filter and the list. Called once history is loaded, after the first
        frame, which then paints sooner."""
        if not self.query("#filter"):
            await self.mount_all(
                [
                    Input(placeholder="Filter conversations", id="filter"),
                    ConversationList(id="conversations"),
                ]
            )

    @property
    def query_text(self) -> str:
        found = self.query("#filter")
        return found.first(Input).value if found else ""

    def show(self, conversations: list[Conversation], current_id: int | None) -> None:
        """Replace the list, keeping the current conversation highlighted."""
        self.current_id = current_id
        if not self.query(ConversationList):
            return
        listing = self.query_one(ConversationList)
        listing.clear_options()
        listing.add_options([Option(conversation_label(c), id=str(c.id)) for c in conversations])
        if not conversations and self.query_text.strip():
            listing.add_option(Option("No matches", disabled=True))
        self.highlight(current_id)

    def highlight(self, conversation_id: int | None) -> None:
        self.current_id = conversation_id
        if not self.query(ConversationList):
            return
        listing = self.query_one(ConversationList)
        if conversation_id is None:
            listing.highlighted = None
            return
        try:
            listing.highlighted = listing.get_option_index(str(conversation_id))
        except Exception:  # not in the (filtered) list
            listing.highlighted = None

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(event.value))

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        listing = self.query_one(ConversationList)
        if listing.option_count and listing.highlighted is None:
            listing.highlighted = 0
        listing.focus()

    @on(OptionList.OptionSelected, "#conversations")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Selected(int(event.option.id)))

"""The chat screen's conversation dialogs: rename, confirm a delete, export to a file.

Each opens a dialog and acts on the answer through the host (the chat screen), which keeps the
conversation shown and the store in its ChatContext.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from chatapp.ui.clipboard_export import export_conversation, export_directory

if TYPE_CHECKING:
    from textual.app import App

    from chatapp.ui.chat_context import ChatContext
    from chatapp.ui.widgets.header import ChatHeader


class ConversationHost(Protocol):
    """What the dialogs need of the chat screen."""

    conversation_id: int | None
    context: ChatContext

    @property
    def app(self) -> App[Any]: ...
    @property
    def header(self) -> ChatHeader: ...

    def notify(self, message: str, *, severity: Any = "information") -> None: ...
    def refresh_sidebar(self) -> None: ...
    async def delete_conversation(self, conversation_id: int) -> None: ...


def ask_to_rename(host: ConversationHost) -> None:
    """Ask for a new title for the conversation shown."""
    store = host.context.store
    if host.conversation_id is None or store is None:
        host.notify("Nothing to rename yet: send a first message.", severity="warning")
        return
    from chatapp.ui.screens.dialogs import TextInputScreen

    conversation_id = host.conversation_id
    current = store.get_conversation(conversation_id).title

    def renamed(title: str | None) -> None:
        if title:
            store.rename_conversation(conversation_id, title)
            if host.conversation_id == conversation_id:
                host.header.set_title(title)
            host.refresh_sidebar()

    host.app.push_screen(TextInputScreen("Rename conversation", current), renamed)


def ask_to_delete(host: ConversationHost, conversation_id: int) -> None:
    """Confirm, then delete the conversation (a reply being written for it stops first)."""
    from chatapp.ui.screens.dialogs import ConfirmScreen

    store = host.context.store
    if store is None:
        return
    title = store.get_conversation(conversation_id).title or "Untitled"

    async def answered(yes: bool | None) -> None:
        if yes:
            await host.delete_conversation(conversation_id)

    host.app.push_screen(
        ConfirmScreen(f"Delete “{title}” and all its messages? This cannot be undone."),
        answered,
    )


def ask_to_export(host: ConversationHost) -> None:
    """Ask for a format and a folder, then export the conversation shown."""
    store = host.context.store
    if host.conversation_id is None or store is None:
        host.notify("Nothing to export yet: send a first message.", severity="warning")
        return
    from chatapp.ui.screens.dialogs import ExportScreen

    conversation_id = host.conversation_id

    def chosen(answer: Any) -> None:
        if answer:
            fmt, folder = answer
            export_conversation(host.app, store, conversation_id, fmt, folder)

    host.app.push_screen(ExportScreen(export_directory()), chosen)

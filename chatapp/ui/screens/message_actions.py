"""What the chat screen does with one message: copy it or its code, edit it, regenerate the
reply, switch to another branch of it. The screen's key bindings and the message's own menu
both land here."""

from __future__ import annotations

from typing import Any, Protocol

from textual.app import App
from textual.widget import Widget

from chatapp.ui.branches import switch_branch
from chatapp.ui.chat_context import ChatContext
from chatapp.ui.clipboard_export import copy_text
from chatapp.ui.widgets.chat_view import ChatView
from chatapp.ui.widgets.message import MessageWidget


class ChatScreen(Protocol):
    """What these actions need of the chat screen."""

    context: ChatContext
    conversation_id: int | None

    @property
    def app(self) -> App[Any]: ...
    @property
    def focused(self) -> Widget | None: ...
    @property
    def chat_view(self) -> ChatView: ...

    def notify(self, message: str, *, severity: Any = "information") -> None: ...
    def reply_running(self) -> bool: ...
    async def open_conversation(self, conversation_id: int | None) -> None: ...
    def edit_message(self, message_id: int, text: str) -> None: ...
    def action_regenerate(self) -> None: ...


async def switch_shown_branch(screen: ChatScreen, message_id: int, delta: int) -> None:
    """Show the ``delta``-th other branch at ``message_id`` and focus it."""
    if screen.reply_running():
        screen.notify("Wait for the reply, or press Esc to stop it.", severity="warning")
        return
    store = screen.context.store
    if store is None:
        return
    shown = switch_branch(store, message_id, delta)
    if shown is None:
        return
    await screen.open_conversation(screen.conversation_id)
    widget = screen.chat_view.widget_for_id(shown)
    if widget is not None:
        widget.focus()


def run_message_action(screen: ChatScreen, widget: MessageWidget, action: str) -> None:
    if action == "copy":
        copy_text(screen.app, widget.content, "message")
    elif action == "copy_code":
        _copy_code(screen, widget)
    elif action == "edit":
        if widget.role != "user" or widget.message_id is None:
            screen.notify("Only your own messages can be edited.", severity="warning")
        else:
            screen.edit_message(widget.message_id, widget.content)
    elif action == "regenerate":
        screen.action_regenerate()


def _copy_code(screen: ChatScreen, widget: MessageWidget) -> None:
    found = widget.next_code_block()
    if found is None:
        screen.notify("This message has no code block.", severity="warning")
        return
    code, number, count = found
    copy_text(screen.app, code, f"code block {number}/{count}")


def last_message(screen: ChatScreen, role: str) -> MessageWidget | None:
    widgets = reversed(screen.chat_view.message_widgets())
    return next((w for w in widgets if w.role == role), None)


def copy_last_reply(screen: ChatScreen, *, code: bool = False) -> None:
    """Copy the last reply (``code``: its next code block) to the clipboard."""
    widget = last_message(screen, "assistant")
    if widget is None:
        screen.notify(f"No reply to copy{' from' if code else ''} yet.", severity="warning")
    elif code:
        _copy_code(screen, widget)
    else:
        copy_text(screen.app, widget.content, "reply")


def edit_last_message(screen: ChatScreen) -> None:
    """Edit the focused message of the user's, or else their last one."""
    focused = screen.focused
    widget = (
        focused
        if isinstance(focused, MessageWidget) and focused.role == "user"
        else last_message(screen, "user")
    )
    if widget is None or widget.message_id is None:
        screen.notify("No message of yours to edit yet.", severity="warning")
        return
    screen.edit_message(widget.message_id, widget.content)

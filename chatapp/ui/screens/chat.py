"""The main screen: conversations on the left, the chat on the right, the prompt below.

It owns the conversation shown, the choices for the next turns (``TurnChoices``: the document
collection and whether documents are on) and every conversation action (new, open, rename,
delete, export, branches, copy); replies are driven by its ``ReplyController``
(``chatapp/ui/screens/replies.py``). What it needs of the app comes as a ``ChatContext``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from chatapp.errors import ChatappError
from chatapp.ui.branches import branch_positions
from chatapp.ui.chat_context import ChatContext, TurnChoices
from chatapp.ui.generation import Reply, ReplyEnded, ReplyStarted
from chatapp.ui.messages import ReplyFinished
from chatapp.ui.row_compositor import RowCroppedCompositor
from chatapp.ui.screens.chat_tools import ChatTools
from chatapp.ui.screens.conversation_dialogs import ask_to_delete, ask_to_export, ask_to_rename
from chatapp.ui.screens.message_actions import (
    copy_last_reply,
    edit_last_message,
    last_message,
    run_message_action,
    switch_shown_branch,
)
from chatapp.ui.screens.replies import ReplyController
from chatapp.ui.widgets.chat_view import ChatView
from chatapp.ui.widgets.header import ChatHeader
from chatapp.ui.widgets.message import MessageWidget
from chatapp.ui.widgets.prompt import PromptInput
from chatapp.ui.widgets.sidebar import ConversationSidebar
from chatapp.ui.widgets.status import StatusBar

if TYPE_CHECKING:
    from chatapp.session import TurnRequest
    from chatapp.storage import Conversation, Message

SourcesRenderer = Callable[["Message"], Widget | None]

SIDEBAR_LIMIT = 200
NARROW_WIDTH = 70
"""Below this many columns the sidebar folds away (Ctrl+B shows it over the chat)."""


class ChatScreen(Screen[None]):
    """Sidebar + chat view + prompt + status line + key bar."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+r", "regenerate", "Regenerate"),
        Binding("f4", "edit_last", "Edit last prompt", show=False),
        Binding("f2", "rename", "Rename", show=False),
        Binding("f8", "delete", "Delete chat", show=False),
        Binding("alt+left", "branch(-1)", "Previous branch", show=False),
        Binding("alt+right", "branch(1)", "Next branch", show=False),
        Binding("f3", "copy_last", "Copy last reply", show=False),
        Binding("ctrl+o", "export", "Export", show=False),
        Binding("ctrl+s", "settings", "Settings", show=False),
        Binding("ctrl+t", "theme", "Theme", show=False),
        Binding("alt+t", "toggle_thinking", "Thinking on/off", show=False),
        Binding("f5", "choose_tools", "Tools offered", show=False),
        Binding("ctrl+b", "toggle_sidebar", "Sidebar", show=False),
        Binding("ctrl+l", "find_conversation", "Find chat", show=False),
        Binding("f1", "help", "Help"),
    ]

    def __init__(
        self, context: ChatContext | None = None, sources_renderer: SourcesRenderer | None = None
    ) -> None:
        super().__init__()
        self._compositor = RowCroppedCompositor()  # streamed frames draw the rows they change
        self.context = context or ChatContext()
        self.choices = TurnChoices()
        self.conversation_id: int | None = None
        self.view_epoch = 0
        self._sidebar_forced: bool | None = None
        self._sources_renderer = sources_renderer
        self.replies: ReplyController
        self.tools: ChatTools

    def compose(self) -> ComposeResult:
        yield ChatHeader(id="header")
        with Horizontal(id="main"):
            yield ConversationSidebar(id="sidebar")
            with Vertical(id="chat-pane"):
                yield ChatView(id="chat")
                yield PromptInput(id="prompt")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.replies = ReplyController(self)
        self.chat_view.sources_widget = self.sources_widget
        self.tools = ChatTools(self)
        self.query_one(PromptInput).focus()

    # -- replies (the controller does the work) -------------------------------------------

    @property
    def reply(self) -> Reply | None:
        """The reply being written (None when idle)."""
        return self.replies.reply

    @property
    def replies_started(self) -> int:
        return self.replies.started_count

    def reply_running(self) -> bool:
        return self.replies.running()

    def on_prompt_input_submitted(self, event: PromptInput.Submitted) -> None:
        event.stop()
        if self.replies.refuse_if_busy():
            return
        self.prompt.remember(event.text)
        self.prompt.clear_prompt()
        self.replies.send(self.choices.request(event.text))

    def send_request(self, request: TurnRequest) -> Reply | None:
        """Send a prepared request (the template picker's, an extension's) as the next turn."""
        return self.replies.send(request)

    def action_regenerate(self) -> None:
        last_user = last_message(self, "user")
        if last_user is None:
            self.notify("Nothing to regenerate yet.", severity="warning")
            return
        self.replies.regenerate(last_user.content)

    def edit_message(self, message_id: int, text: str) -> None:
        if self.replies.refuse_if_busy():
            return
        from chatapp.ui.screens.dialogs import EditMessageScreen

        def resend(new_text: str | None) -> None:
            if new_text:
                self.replies.edit(message_id, new_text)

        self.app.push_screen(EditMessageScreen(text), resend)

    async def on_reply_started(self, message: ReplyStarted) -> None:
        await self.replies.started(message)

    async def on_reply_ended(self, message: ReplyEnded) -> None:
        await self.replies.ended(message)

    def reply_finished(self) -> None:
        self.post_message(ReplyFinished())

    def sources_widget(self, message: Message) -> Widget | None:
        if self._sources_renderer is not None:
            return self._sources_renderer(message)
        from textual.widgets import Static

        from chatapp.ui.widgets.message import source_label

        lines = [source_label(s, i) for i, s in enumerate(message.sources or [], start=1)]
        return Static("\n".join(["Sources:", *lines]), classes="sources", markup=False)

    def action_stop(self) -> None:
        if self.replies.stop():
            return
        if self.has_class("-sidebar-overlay"):
            self.action_toggle_sidebar()
        else:
            self.prompt.focus()

    async def stop_reply_for(self, conversation_id: int | None) -> None:
        await self.replies.stop_for(conversation_id)

    def on_unmount(self) -> None:
        # The app is closing (window closed, quit): stop the reply; run_app waits for it to be
        # stored before closing the database.
        replies = getattr(self, "replies", None)
        if replies is not None and replies.reply is not None and not replies.reply.done:
            replies.reply.stop()

    def stop_reply_blocking(self, timeout: float) -> None:
        replies = getattr(self, "replies", None)
        if replies is not None:
            replies.stop_blocking(timeout)

    # -- turn choices ---------------------------------------------------------------------

    def set_documents(self, collection: str | None, enabled: bool) -> None:
        """Choose the collection the next turns answer from (None, or off: no documents); the
        choice is saved with the settings (``ui.collection``, ``ui.documents``) for next time."""
        self.choices.collection = collection
        self.choices.documents = enabled and collection is not None
        self.context.tools_collection = collection
        self.header.set_field("docs", self.choices.active_collection)
        settings = self.context.settings
        remembered = (collection, self.choices.documents)
        if settings is None or (settings.ui.collection, settings.ui.documents) == remembered:
            return
        settings.ui.collection, settings.ui.documents = remembered
        apply_settings = getattr(self.app, "apply_settings", None)
        if apply_settings is not None:
            apply_settings(settings, reload_model=False)

    # -- tools (chatapp/ui/screens/chat_tools.py) -------------------------------------------

    def action_choose_tools(self) -> None:
        self.tools.choose()

    def set_tools(self, tools: list[str] | None) -> None:
        """Offer these tool servers in the next turns (None: the settings' ``tools.offered``)."""
        self.tools.set_offered(tools)

    def action_toggle_thinking(self) -> None:
        """Thinking on or off (or the next reasoning effort) for the next replies."""
        backend = self.context.model.backend
        if backend is None:
            self.notify("The model is still loading.", severity="warning")
            return
        self.notify(self.choices.toggle_thinking(backend.thinking, self.context.settings))
        self.show_thinking_choice()

    def show_thinking_choice(self) -> None:
        """The header's ``thinking`` field: what the next reply does (hidden for models that
        never think)."""
        backend = self.context.model.backend
        support = backend.thinking if backend is not None else None
        state = self.choices.thinking_state(support, self.context.settings) if support else None
        self.header.set_field("thinking", state)

    # -- parts ----------------------------------------------------------------------------

    @property
    def chat_view(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def header(self) -> ChatHeader:
        return self.query_one(ChatHeader)

    @property
    def sidebar(self) -> ConversationSidebar:
        return self.query_one(ConversationSidebar)

    # -- layout ---------------------------------------------------------------------------

    def on_resize(self) -> None:
        self._apply_sidebar()

    def _apply_sidebar(self) -> None:
        narrow = self.size.width < NARROW_WIDTH
        self.set_class(narrow, "-narrow")
        shown = (not narrow) if self._sidebar_forced is None else self._sidebar_forced
        self.set_class(not shown, "-sidebar-hidden")
        self.set_class(shown and narrow, "-sidebar-overlay")
        self.status_bar.refresh()  # it drops its numbers when narrow

    def action_toggle_sidebar(self) -> None:
        self._sidebar_forced = self.has_class("-sidebar-hidden")
        self._apply_sidebar()
        if self._sidebar_forced:
            for listing in self.sidebar.query("#conversations"):
                listing.focus()
        else:
            self.prompt.focus()

    def action_find_conversation(self) -> None:
        if self.has_class("-sidebar-hidden"):
            self._sidebar_forced = True
            self._apply_sidebar()
        for box in self.sidebar.query("#filter"):
            box.focus()

    # -- conversations --------------------------------------------------------------------

    def refresh_sidebar(self) -> None:
        self._search(self.sidebar.query_text)

    @on(ConversationSidebar.FilterChanged)
    def _filter_changed(self, event: ConversationSidebar.FilterChanged) -> None:
        self._search(event.query)

    @work(thread=True, exclusive=True, group="sidebar")
    def _search(self, query: str) -> None:
        store = self.context.store
        if store is None:
            return
        found = store.search_conversations(query, limit=SIDEBAR_LIMIT)
        self.app.call_from_thread(self._show_conversations, found)

    def _show_conversations(self, conversations: list[Conversation]) -> None:
        self.sidebar.show(conversations, self.conversation_id)

    @on(ConversationSidebar.Selected)
    async def _selected(self, event: ConversationSidebar.Selected) -> None:
        await self.open_conversation(event.conversation_id)
        if self.has_class("-sidebar-overlay"):
            self._sidebar_forced = False
            self._apply_sidebar()
        self.prompt.focus()

    @on(ConversationSidebar.DeleteRequested)
    def _delete_requested(self, event: ConversationSidebar.DeleteRequested) -> None:
        self.confirm_delete(event.conversation_id)

    async def open_conversation(self, conversation_id: int | None) -> None:
        """Show a stored conversation (its active branch), or an empty new chat for None."""
        store = self.context.store
        self.view_epoch += 1
        self.conversation_id = conversation_id
        self.sidebar.highlight(conversation_id)
        if conversation_id is None or store is None:
            self.conversation_id = None
            self.header.set_title("New chat")
            self._show_header_fields()
            await self.chat_view.show_thread([], {})
            self.prompt.prompt_history = []
            return
        try:
            conversation = store.get_conversation(conversation_id)
            thread = store.thread(conversation_id)
            everything = store.messages(conversation_id)
        except ChatappError as exc:
            self.notify(exc.message, severity="error")
            await self.open_conversation(None)
            return
        self.header.set_title(conversation.title)
        self._show_header_fields()
        await self.chat_view.show_thread(thread, branch_positions(everything, thread))
        self.prompt.prompt_history = [m.content for m in thread if m.role == "user"][-50:]
        await self.replies.reattach()

    def _show_header_fields(self) -> None:
        # The header names what the next message goes through. A template run (Ctrl+G) is one
        # turn, so a reopened chat whose last turn ran one continues as plain chat, as it does
        # right after the run: its header names the same template as a new chat's.
        # Likewise documents: the ``docs`` field names the collection the next message uses,
        # not the one this conversation's last turn used.
        settings = self.context.settings
        self.header.set_field("template", settings.chat.template if settings else None)
        if hasattr(self, "tools"):
            self.tools.show_field()

    async def action_new_chat(self) -> None:
        await self.open_conversation(None)
        self.prompt.focus()

    def action_rename(self) -> None:
        ask_to_rename(self)

    def action_delete(self) -> None:
        if self.conversation_id is None:
            self.notify("Nothing to delete: this chat is not saved yet.", severity="warning")
            return
        self.confirm_delete(self.conversation_id)

    def confirm_delete(self, conversation_id: int) -> None:
        ask_to_delete(self, conversation_id)

    async def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation; a reply being generated for it is stopped first."""
        await self.stop_reply_for(conversation_id)
        store = self.context.store
        if store is None:
            return
        from chatapp.session.deletion import delete_conversation

        try:
            delete_conversation(store, conversation_id)  # its saved model states too
        except ChatappError as exc:  # a read-only or damaged database, a read-only cache
            self.notify(exc.message, severity="error")
            try:
                if store.has_conversation(conversation_id):
                    return  # nothing was deleted
            except ChatappError:
                return
        if self.conversation_id == conversation_id:
            await self.open_conversation(None)
        self.refresh_sidebar()
        self.notify("Conversation deleted.")

    def action_export(self) -> None:
        ask_to_export(self)

    # -- branches and messages ------------------------------------------------------------

    async def action_branch(self, delta: int) -> None:
        focused = self.focused if isinstance(self.focused, MessageWidget) else None
        target = focused or next(
            (w for w in reversed(self.chat_view.message_widgets()) if w.branch.count > 1), None
        )
        if target is None or target.message_id is None:
            self.notify("No other branches here.", severity="information")
            return
        await self._switch_branch(target.message_id, delta)

    @on(MessageWidget.BranchRequested)
    async def _branch_requested(self, event: MessageWidget.BranchRequested) -> None:
        if event.widget.message_id is not None:
            await self._switch_branch(event.widget.message_id, event.delta)

    async def _switch_branch(self, message_id: int, delta: int) -> None:
        await switch_shown_branch(self, message_id, delta)

    @on(MessageWidget.ActionRequested)
    def _message_action(self, event: MessageWidget.ActionRequested) -> None:
        run_message_action(self, event.widget, event.action)

    def action_copy_last(self) -> None:
        copy_last_reply(self)

    def action_copy_code(self) -> None:
        copy_last_reply(self, code=True)

    def action_edit_last(self) -> None:
        edit_last_message(self)

    # -- other screens --------------------------------------------------------------------

    async def action_settings(self) -> None:
        await self.app.run_action("open_settings")

    async def action_help(self) -> None:
        await self.app.run_action("open_help")

    def action_theme(self) -> None:
        self.app.search_themes()

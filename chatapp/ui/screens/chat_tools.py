"""The chat screen's tool parts: the approval card's approver, "always allow" rules saved in
the settings, and the tools toggle (F5) whose choice each turn offers (shown in the header).

``ChatTools`` belongs to the chat screen, like its ``ReplyController``. The ``ToolUse`` itself
is the ChatContext's (one per app, built on first use, closed with the app)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chatapp.domain import CancelToken
    from chatapp.ui.chat_context import ChatContext, TurnChoices
    from chatapp.ui.screens.replies import ReplyController
    from chatapp.ui.widgets.header import ChatHeader


class ToolsHost(Protocol):
    """What ``ChatTools`` needs of the chat screen."""

    context: ChatContext
    choices: TurnChoices
    replies: ReplyController

    @property
    def app(self) -> Any: ...
    @property
    def header(self) -> ChatHeader: ...

    def notify(self, message: str, *, markup: bool = ...) -> None: ...
    def run_worker(self, work: Any, *, thread: bool, exclusive: bool, group: str) -> Any: ...


class ChatTools:
    """Approval, rules and the offered tools for one chat screen."""

    def __init__(self, screen: ToolsHost) -> None:
        from chatapp.ui.screens.tool_approval import ChatApprover

        self.screen = screen
        screen.context.approver = ChatApprover(screen.app, screen.replies.stop, self._cancel)
        screen.context.remember_rule = self._remember_rule

    def _cancel(self) -> CancelToken | None:
        reply = self.screen.replies.reply
        return reply.cancel if reply is not None else None

    def _remember_rule(self, name: str, rule: str) -> None:
        """ "Always allow" on the card (called in the reply's worker thread)."""
        self.screen.app.call_from_thread(self.store_rule, name, rule)

    def store_rule(self, name: str, rule: str) -> None:
        """Keep a rule for one tool in the settings (``tools.rules``), saved for next time."""
        screen = self.screen
        settings = screen.context.settings
        if settings is None:
            return
        settings.tools.rules = {**settings.tools.rules, name: rule}  # type: ignore[dict-item]
        apply_settings = getattr(screen.app, "apply_settings", None)
        if apply_settings is not None:
            apply_settings(settings, reload_model=False)
        else:
            screen.context.use_settings(settings)
        screen.notify(
            f"{name} now runs without asking (Settings lists and revokes rules).", markup=False
        )

    def choose(self) -> None:
        """The tools toggle: list the servers in a worker (reads mcp.json; none starts), then
        show the picker."""
        self.screen.run_worker(self._list_servers, thread=True, exclusive=True, group="tools")

    def _list_servers(self) -> None:
        screen = self.screen
        tools = screen.context.tools
        if tools is None:
            screen.app.call_from_thread(screen.notify, "Settings are still loading.")
            return
        servers = tools.registry.servers()
        offered = screen.choices.offered_tools(screen.context.settings)
        problem = screen.context.tools_problem
        screen.app.call_from_thread(self._pick, servers, offered, problem)

    def _pick(self, servers: list[str], offered: list[str], problem: str | None) -> None:
        from chatapp.ui.screens.tool_picker import ToolPickerScreen

        def chosen(picked: list[str] | None) -> None:
            if picked is not None:
                self.set_offered(picked)

        self.screen.app.push_screen(ToolPickerScreen(servers, offered, problem), chosen)

    def set_offered(self, tools: list[str] | None) -> None:
        """Offer these tool servers in the next turns (None: ``tools.offered``)."""
        self.screen.choices.tools = tools
        self.show_field()

    def show_field(self) -> None:
        """The header's ``tools`` field: what the next turn offers."""
        screen = self.screen
        offered = screen.choices.offered_tools(screen.context.settings)
        screen.header.set_field("tools", ", ".join(offered) if offered else None)

"""The registry of the chat's commands, named screens and sources renderer.

The pickers (templates, collections, models) each define ``register(ui: UIExtensions)``; the app
imports them and calls it in its startup worker, after the first frame is painted (so they and
what they import stay off the first frame's path; a broken one fails loudly, not hidden). Through the registry a module adds command-palette commands
(optionally with a key), named screens and a renderer for a reply's sources. Turns are not
prepared here: what shapes a turn (template, collection) is part of the ``TurnRequest`` the chat
screen sends, and the session prepares it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from textual.screen import Screen
    from textual.widget import Widget

    from chatapp.config import Settings
    from chatapp.session import TurnRequest
    from chatapp.storage import ConversationStore, Message
    from chatapp.ui.chat_context import ChatContext
    from chatapp.ui.screens.chat import ChatScreen


class ExtensionHost(Protocol):
    """What commands and screen factories are given: the running chat app, as far as an
    extension may use it (the app implements it; tests may give something smaller)."""

    extensions: UIExtensions

    @property
    def context(self) -> ChatContext: ...
    @property
    def chat_screen(self) -> ChatScreen: ...
    @property
    def settings(self) -> Settings | None: ...
    @property
    def store(self) -> ConversationStore | None: ...

    def send_request(self, request: TurnRequest) -> None: ...
    def apply_settings(self, settings: Settings, *, reload_model: bool) -> bool: ...
    def action_open_screen(self, name: str) -> None: ...
    async def action_run_command(self, title: str) -> None: ...
    def notify(
        self, message: str, *, severity: Any = "information", timeout: Any = None
    ) -> None: ...


CommandAction = str | Callable[[ExtensionHost], Awaitable[Any] | Any]
"""An action string run on the app (``"new_chat"``, ``"open_screen('templates')"``) or a callable
given the app."""

SourcesRenderer = Callable[["Message"], "Widget | None"]
"""Builds the widget shown under an assistant reply that has ``sources`` (None: show nothing)."""

ScreenFactory = Callable[[ExtensionHost], "Screen[Any]"]


@dataclass(frozen=True)
class PaletteCommand:
    """One entry of the command palette (Ctrl+P) and the help screen."""

    title: str
    help: str
    action: CommandAction
    key: str | None = None
    """A key that runs it everywhere on the chat screen (e.g. ``"ctrl+g"``); None for palette only."""
    group: str = "Extensions"


@dataclass
class UIExtensions:
    """Everything registered by extension modules (and the app's own palette commands)."""

    commands: list[PaletteCommand] = field(default_factory=list)
    screens: dict[str, ScreenFactory] = field(default_factory=dict)
    sources_renderer: SourcesRenderer | None = None

    def add_command(
        self,
        title: str,
        help: str,
        action: CommandAction,
        *,
        key: str | None = None,
        group: str = "Extensions",
    ) -> PaletteCommand:
        """Add a command-palette entry; with ``key`` it is also bound on the chat screen."""
        command = PaletteCommand(title, help, action, key, group)
        self.commands = [c for c in self.commands if c.title != title] + [command]
        return command

    def add_screen(self, name: str, factory: ScreenFactory) -> None:
        """Make ``app.open_screen(name)`` (and the action ``open_screen('name')``) push it."""
        self.screens[name] = factory

    def set_sources_renderer(self, renderer: SourcesRenderer) -> None:
        self.sources_renderer = renderer

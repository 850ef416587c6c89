"""The tools toggle (F5): which tool servers the chat's next turns offer the model.

A list of the registry's servers (the built-ins ``documents``, ``clock``, ``math`` and the MCP
servers of ``mcp.json``), the ones offered now ticked. Listing reads ``mcp.json`` only: no
server starts here. Dismisses with the chosen servers (empty: no tools), or None."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from chatapp.terminal_text import safe_for_terminal

BUILTIN_HINTS = {
    "documents": "search the chosen document collection",
    "clock": "the date, time and time zone",
    "math": "exact arithmetic",
}


def server_label(server: str) -> Content:
    hint = BUILTIN_HINTS.get(server, "MCP server (asks before each new tool)")
    return Content.assemble(safe_for_terminal(server), (f"  {hint}", "dim"))


class ToolPickerScreen(ModalScreen[list[str] | None]):
    """Tick the servers the next turns offer (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "offer", "Offer these"),
    ]

    def __init__(
        self, servers: Sequence[str], offered: Sequence[str], problem: str | None = None
    ) -> None:
        super().__init__()
        self.servers = list(servers)
        self.offered = {name.split(".", 1)[0] for name in offered}
        self.problem = problem

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tool-picker"):
            yield Label("Tools this chat offers the model", classes="dialog-title")
            yield SelectionList[str](
                *(Selection(server_label(s), s, s in self.offered) for s in self.servers),
                id="tool-servers",
            )
            if self.problem:
                yield Static(Content(safe_for_terminal(self.problem)), classes="field-hint error")
            yield Static(
                "Space ticks a server. Read-only built-ins run without asking "
                "(tools.allow_read_only); other tools ask first.",
                classes="field-hint",
                markup=False,
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Offer (Ctrl+S)", variant="primary", id="offer")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#offer")
    def action_offer(self) -> None:
        chosen = set(self.query_one(SelectionList).selected)
        self.dismiss([s for s in self.servers if s in chosen])

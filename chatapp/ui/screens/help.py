"""The help screen: every key binding, read from the widgets' own BINDINGS, and every
command-palette command."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, TextArea

from chatapp.ui.extensions import PaletteCommand

KEY_NAMES = {
    "escape": "Esc",
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "delete": "Delete",
    "enter": "Enter",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "backspace": "Backspace",
}


def _key_part(part: str) -> str:
    if part in KEY_NAMES:
        return KEY_NAMES[part]
    if len(part) == 1 or (part[0] == "f" and part[1:].isdigit()):
        return part.upper()
    return part.capitalize()


def key_label(keys: str) -> str:
    """``"ctrl+n,f2"`` → ``"Ctrl+N / F2"``."""
    shown = []
    for key in keys.split(","):
        parts = [_key_part(p) for p in key.split("+")]
        shown.append("+".join(parts))
    return " / ".join(shown)


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for binding in bindings:
        if isinstance(binding, Binding) and binding.description:
            rows.append((key_label(binding.key), binding.description))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    lines = [f"## {title}", "", "| Key | Does |", "|---|---|"]
    lines += [f"| {_cell(key)} | {_cell(what)} |" for key, what in rows]
    return "\n".join(lines) + "\n"


def help_markdown(commands: Sequence[PaletteCommand]) -> str:
    """The help text: one table per place where keys work."""
    from chatapp.ui.screens.chat import ChatScreen
    from chatapp.ui.screens.tool_approval import ToolApprovalScreen
    from chatapp.ui.widgets.message import MessageWidget

    prompt_rows = [
        ("Enter", "Send"),
        ("Shift+Enter / Ctrl+J", "New line"),
        ("↑ (on the first line)", "Previous prompt (again: further back)"),
        ("↓ (on the last line)", "Next prompt / back to what you were typing"),
        ("Tab / Shift+Tab", "Move between the prompt, messages and the conversation list"),
    ]
    general = [
        ("Ctrl+P", "Command palette: every command by name"),
        ("Ctrl+Q", "Quit (a reply being written is stopped and kept)"),
    ]
    sidebar_rows = [
        ("↑ / ↓", "Move"),
        ("Enter", "Open the conversation"),
        ("Delete", "Delete it (asks first)"),
    ]
    extension_rows = [(key_label(c.key), c.title) for c in commands if c.key]
    parts = [
        "# Keys and commands\n",
        _table("Everywhere", general + binding_rows(ChatScreen.BINDINGS)),
        _table("Prompt", prompt_rows),
        _table("A focused message", binding_rows(MessageWidget.BINDINGS)),
        _table("A tool call waiting for your yes", binding_rows(ToolApprovalScreen.BINDINGS)),
        _table("Conversation list", sidebar_rows),
    ]
    if extension_rows:
        parts.append(_table("Extensions", extension_rows))
    parts.append(_table("Prompt editing", binding_rows(TextArea.BINDINGS)))
    palette = [(c.title, c.help) for c in commands]
    parts.append(
        "## Command palette (Ctrl+P)\n\n| Command | Does |\n|---|---|\n"
        + "\n".join(f"| {title} | {what} |" for title, what in palette)
        + "\n"
    )
    return "\n".join(parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "close", "Close help"),
    ]

    def __init__(self, commands: Sequence[PaletteCommand]) -> None:
        super().__init__()
        self.commands = commands

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body", classes="dialog wide"):
            yield Markdown(help_markdown(self.commands))

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)

"""The command palette (Ctrl+P): every chat action, plus what extensions register.

Built-in commands run actions of the chat screen; their keys are read from ChatScreen.BINDINGS
so the palette and the help screen never disagree with the real bindings.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from chatapp.ui.extensions import ExtensionHost, PaletteCommand, UIExtensions

BUILTIN_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("New chat", "Start a new conversation", "new_chat"),
    ("Rename conversation", "Give the current conversation a new title", "rename"),
    ("Delete conversation", "Delete the current conversation (asks first)", "delete"),
    ("Stop generation", "Stop the reply being written; the partial reply is kept", "stop"),
    ("Regenerate reply", "Write a new reply to the last prompt, as a new branch", "regenerate"),
    (
        "Edit last prompt and resend",
        "Change your last message and resend it as a branch",
        "edit_last",
    ),
    ("Previous branch", "Show the previous alternative of a branched message", "branch(-1)"),
    ("Next branch", "Show the next alternative of a branched message", "branch(1)"),
    ("Copy last reply", "Copy the last reply to the clipboard", "copy_last"),
    ("Copy code block", "Copy a code block of the last reply (again: the next one)", "copy_code"),
    ("Export conversation", "Save the conversation as Markdown or JSON", "export"),
    ("Settings", "System prompt, sampling, context size, threads, GPU layers", "settings"),
    (
        "Thinking on / off",
        "Let a thinking model reason before it answers, or not (or its next effort)",
        "toggle_thinking",
    ),
    (
        "Tools offered",
        "Choose the tools the model may call in this chat (documents, clock, math, MCP)",
        "choose_tools",
    ),
    ("Help: keys and commands", "Every key binding and command", "help"),
    ("Switch theme", "Pick a colour theme (remembered)", "theme"),
    ("Toggle sidebar", "Show or hide the conversation list", "toggle_sidebar"),
    ("Find conversation", "Filter conversations by title or text", "find_conversation"),
)


def register_builtin_commands(extensions: UIExtensions) -> None:
    for title, help_text, action in BUILTIN_COMMANDS:
        extensions.add_command(title, help_text, action, group="Chat")


def keys_for(command: PaletteCommand) -> str | None:
    """The key(s) that run a command, as shown to the user."""
    if command.key:
        return command.key
    if not isinstance(command.action, str):
        return None
    from chatapp.ui.screens.chat import ChatScreen

    for binding in ChatScreen.BINDINGS:
        if not isinstance(binding, tuple) and binding.action == command.action:
            return binding.key
    return None


class ChatCommands(Provider):
    """Palette entries for the chat actions and the extensions' commands."""

    def _commands(self) -> list[PaletteCommand]:
        app: ExtensionHost = self.app  # type: ignore[assignment]
        return list(app.extensions.commands)

    def _help(self, command: PaletteCommand) -> str:
        keys = keys_for(command)
        return f"{command.help}  [{keys}]" if keys else command.help

    def _run(self, command: PaletteCommand) -> partial[Any]:
        app: ExtensionHost = self.app  # type: ignore[assignment]
        return partial(app.action_run_command, command.title)

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, self._run(command), help=self._help(command))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.title),
                    self._run(command),
                    help=self._help(command),
                )

"""The approval card: a tool call shown before it runs, and the user's answer.

The card names the tool and its server and shows the call's arguments as pretty-printed JSON
(data from the model: escaped, never markup). It dismisses with ``"once"``, ``"always"``,
``"deny"``, or ``"stop"`` (Esc: deny and stop the reply). ``ChatApprover`` is the chat's
``Approver``: the tool loop runs in the reply's worker thread, so ``ask`` shows the card on the
UI thread and blocks that worker until the user answers or the reply is stopped."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from chatapp.terminal_text import safe_for_terminal

if TYPE_CHECKING:
    from chatapp.domain import CancelToken, ToolCall, ToolSpec
    from chatapp.tools.approval import Answer

POLL_S = 0.05
"""How often a waiting approver looks whether the reply was stopped meanwhile."""


def call_arguments_text(call: ToolCall) -> str:
    """A call's arguments as the user reads them: indented JSON (the raw text when it did not
    parse), escaped for the terminal."""
    if call.error and call.raw_arguments:
        text = call.raw_arguments
    else:
        text = json.dumps(call.arguments, indent=2, ensure_ascii=False, sort_keys=True)
    return safe_for_terminal(text)


class ToolApprovalScreen(ModalScreen[str | None]):
    """Allow once / Always allow this tool / Deny one call (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "answer('once')", "Allow once"),
        Binding("a", "answer('always')", "Always allow this tool"),
        Binding("d,n", "answer('deny')", "Deny"),
        Binding("escape", "answer('stop')", "Deny and stop the reply"),
    ]

    def __init__(self, call: ToolCall, spec: ToolSpec) -> None:
        super().__init__()
        self.call = call
        self.spec = spec

    def compose(self) -> ComposeResult:
        server = self.spec.server or self.call.name.split(".", 1)[0]
        with Vertical(classes="dialog wide tool-approval"):
            yield Label("The model wants to run a tool", classes="dialog-title")
            yield Static(
                Content.assemble(
                    ("tool ", "dim"),
                    (safe_for_terminal(self.call.name), "bold"),
                    ("  ·  server ", "dim"),
                    safe_for_terminal(server),
                ),
                id="approval-tool",
            )
            if self.spec.description:
                yield Static(
                    Content(safe_for_terminal(self.spec.description)),
                    id="approval-description",
                    classes="field-hint",
                )
            with VerticalScroll(id="approval-arguments-box"):
                yield Static(Content(call_arguments_text(self.call)), id="approval-arguments")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Allow once (o)", variant="primary", id="allow-once")
                yield Button("Always allow this tool (a)", id="allow-always")
                yield Button("Deny (d)", variant="error", id="deny")

    def on_mount(self) -> None:
        self.query_one("#deny", Button).focus()

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)

    @on(Button.Pressed, "#allow-once")
    def _once(self) -> None:
        self.dismiss("once")

    @on(Button.Pressed, "#allow-always")
    def _always(self) -> None:
        self.dismiss("always")

    @on(Button.Pressed, "#deny")
    def _deny(self) -> None:
        self.dismiss("deny")


class ChatApprover:
    """Asks through the approval card, from the reply's worker thread (blocking it)."""

    def __init__(self, app: Any, stop_reply: Any, current_cancel: Any) -> None:
        self.app = app
        self._stop_reply = stop_reply
        """Called on the UI thread when the card is left with Esc."""
        self._current_cancel = current_cancel
        """Returns the cancel token of the reply being written (None when none is)."""
        self.cards: list[ToolApprovalScreen] = []
        """Cards shown so far (tests look at them)."""

    def ask(self, call: ToolCall, spec: ToolSpec) -> Answer:
        cancel: CancelToken | None = self._current_cancel()
        answered = threading.Event()
        answers: list[str] = []

        def done(answer: str | None) -> None:  # on the UI thread
            answers.append(answer or "deny")
            if answer == "stop":
                self._stop_reply()
            answered.set()

        card = ToolApprovalScreen(call, spec)
        try:
            self.app.call_from_thread(self.app.push_screen, card, done)
        except RuntimeError:  # the app has closed
            return "deny"
        self.cards.append(card)
        while not answered.wait(POLL_S):
            if (cancel is not None and cancel.cancelled) or not self.app.is_running:
                self._withdraw(card)
                return "deny"
        answer = answers[0]
        return answer if answer in ("once", "always") else "deny"  # type: ignore[return-value]

    def _withdraw(self, card: ToolApprovalScreen) -> None:
        """Take down a card nobody answered (the reply was stopped, the app is closing)."""

        def dismiss() -> None:
            if self.app.screen is card:
                card.dismiss(None)

        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(dismiss)

"""Small modal dialogs: confirm, rename, edit a message, export. Each dismisses with its answer
(or None when cancelled with Esc)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, TextArea


class _Dialog(ModalScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(_Dialog):
    """Yes/No question; dismisses with True or False."""

    def __init__(self, question: str, confirm_label: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(False)


class TextInputScreen(_Dialog):
    """One line of text (rename); dismisses with the stripped text, or None."""

    def __init__(self, title: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="value")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        value = self.query_one("#value", Input).value.strip()
        if not value:
            self.notify("The name cannot be empty.", severity="warning")
            return
        self.dismiss(value)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class EditMessageScreen(_Dialog):
    """Edit an earlier prompt; Ctrl+S (or the button) resends it as a new branch."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *_Dialog.BINDINGS,
        Binding("ctrl+s", "resend", "Resend"),
    ]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(
                "Edit the message; resending starts a new branch (the original is kept).",
                classes="dialog-title",
            )
            yield TextArea(self.text, soft_wrap=True, id="edit-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Resend (Ctrl+S)", variant="primary", id="resend")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#edit-text", TextArea).focus()

    @on(Button.Pressed, "#resend")
    def action_resend(self) -> None:
        text = self.query_one("#edit-text", TextArea).text
        if not text.strip():
            self.notify("Nothing to send: the message is empty.", severity="warning")
            return
        self.dismiss(text)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class ExportScreen(_Dialog):
    """Choose Markdown or JSON (and, in a terminal, a folder); dismisses with (format, folder)."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Export this conversation", classes="dialog-title")
            with RadioSet(id="format"):
                yield RadioButton("Markdown (.md)", value=True, id="md")
                yield RadioButton("JSON (.json)", id="json")
            yield Label("Save to folder (in a browser the file downloads instead):")
            yield Input(str(self.directory), id="directory")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export", variant="primary", id="export")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#export")
    @on(Input.Submitted, "#directory")
    def _export(self) -> None:
        pressed = self.query_one("#format", RadioSet).pressed_button
        fmt = "json" if pressed is not None and pressed.id == "json" else "md"
        folder = Path(self.query_one("#directory", Input).value.strip() or ".").expanduser()
        self.dismiss((fmt, folder))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

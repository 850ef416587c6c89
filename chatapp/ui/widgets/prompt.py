"""The multi-line prompt: Enter sends, Shift+Enter or Ctrl+J adds a line, Up recalls.

A very large paste (a whole file, a 1 MB log) is kept aside and shown as a one-line placeholder,
so the editor never has to lay out a megabyte; it is put back in place when the prompt is sent.
"""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea

PASTE_INLINE_LIMIT = 16_000
"""Pastes longer than this (in characters) are held aside behind a placeholder."""

PLACEHOLDER = "Ask anything (Enter sends, F1 keys)"


class PromptInput(TextArea):
    """Where the user types; posts ``Submitted`` with the full text (pastes expanded)."""

    class Submitted(Message):
        def __init__(self, prompt: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            placeholder=PLACEHOLDER,
            compact=True,
        )
        self.prompt_history: list[str] = []
        self._history_index: int | None = None
        self._draft = ""
        self._pastes: dict[str, str] = {}

    # -- sending --------------------------------------------------------------------------

    def expanded_text(self) -> str:
        """The prompt as it will be sent: placeholders replaced by what was pasted."""
        text = self.text
        for marker, pasted in self._pastes.items():
            text = text.replace(marker, pasted)
        return text

    def submit(self) -> None:
        text = self.expanded_text()
        if text.strip():
            self.post_message(self.Submitted(self, text))

    def clear_prompt(self) -> None:
        self.clear()
        self._pastes.clear()
        self._history_index = None
        self._draft = ""

    def restore(self, text: str) -> None:
        """Put a prompt back (a send that was refused) unless the user typed something new."""
        if not self.text.strip():
            self.set_text(text)

    def set_text(self, text: str) -> None:
        self._pastes.clear()
        if len(text) > PASTE_INLINE_LIMIT:
            self.load_text("")
            self._insert_paste(text)
        else:
            self.load_text(text)
            self.move_cursor(self.document.end)

    def remember(self, text: str) -> None:
        """Add a sent prompt to the history that Up walks back through."""
        if text.strip() and (not self.prompt_history or self.prompt_history[-1] != text):
            self.prompt_history.append(text)
        self._history_index = None

    # -- keys -----------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.submit()
            return
        if event.key in ("shift+enter", "ctrl+j", "newline"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
        # Other keys fall through to TextArea's own handler (Textual calls each class's
        # handler in turn unless one prevents the default).

    def action_cursor_up(self, select: bool = False) -> None:
        if select or self.cursor_location[0] > 0 or not self.prompt_history:
            super().action_cursor_up(select)
            return
        if self._history_index is None:
            self._draft = self.expanded_text()
            self._history_index = len(self.prompt_history) - 1
        elif self._history_index > 0:
            self._history_index -= 1
        else:
            return
        self._show_recalled(self.prompt_history[self._history_index])

    def action_cursor_down(self, select: bool = False) -> None:
        last_row = self.document.line_count - 1
        if select or self._history_index is None or self.cursor_location[0] < last_row:
            super().action_cursor_down(select)
            return
        if self._history_index < len(self.prompt_history) - 1:
            self._history_index += 1
            self._show_recalled(self.prompt_history[self._history_index])
        else:
            self._history_index = None
            self.set_text(self._draft)

    def _show_recalled(self, text: str) -> None:
        index = self._history_index
        self.set_text(text)
        self._history_index = index
        # Stay on the first line so another Up goes further back.
        self.move_cursor((0, len(self.document[0])))

    # -- large pastes ---------------------------------------------------------------------

    async def _on_paste(self, event: events.Paste) -> None:
        if len(event.text) <= PASTE_INLINE_LIMIT:
            return  # TextArea's own handler inserts it
        event.stop()
        event.prevent_default()
        self._insert_paste(event.text)

    def _insert_paste(self, text: str) -> None:
        lines = text.count("\n") + 1
        marker = (
            f"[pasted text #{len(self._pastes) + 1}: {len(text):,} characters, {lines:,} lines]"
        )
        self._pastes[marker] = text
        self.insert(marker)

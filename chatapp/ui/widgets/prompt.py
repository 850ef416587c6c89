"""The multi-line prompt: Enter sends, Shift+Enter or Ctrl+J adds a line, Up recalls.

A very large paste (a whole file, a 1 MB log) is kept aside and shown as a one-line placeholder,
so the editor never has to lay out a megabyte; it is put back in place when the prompt is sent.

A terminal without bracketed paste types a paste as keys, one event each. Inserted one by one,
every key re-wrapped the whole input (a 200 KB paste never finished, and kept the app from
hearing anything else). Keys already queued behind the one being handled are a burst no person
types: they are gathered and inserted at once, a burst that grows past ``PASTE_INLINE_LIMIT``
goes behind a placeholder like a bracketed paste, and Enter or Tab inside a long burst is part
of the text (a line break, a tab) rather than "send" or "next field".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from textual import events
from textual.message import Message
from textual.widgets import TextArea
from textual.widgets.text_area import Location

PASTE_INLINE_LIMIT = 16_000
"""Pastes longer than this (in characters) are held aside behind a placeholder."""
BURST_GAP_S = 0.1
"""Runs of queued keys less than this apart belong to one burst (one paste typed as keys)."""
BURST_TEXT_CHARS = 64
"""In a burst at least this long, Enter and Tab are text: a person cannot type that fast."""
BURST_TEXT_KEYS_BEHIND = 16
"""Nor with this many keys already waiting behind the Enter (a paste's first short line)."""
BURST_TEXT_KEYS = {"enter": "\n", "tab": "\t"}


@dataclass
class TypedBurst:
    """Keys that arrived faster than anyone types, inserted as one text."""

    start: Location
    end: Location
    parts: list[str] = field(default_factory=list)
    chars: int = 0
    marker: str | None = None
    """The placeholder shown instead, once the burst is longer than PASTE_INLINE_LIMIT."""
    last_at: float = 0.0


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
        self._typed: list[str] = []
        """Characters of keys queued behind the one being handled, not inserted yet."""
        self._burst: TypedBurst | None = None

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
        self._typed.clear()
        self._burst = None
        self._history_index = None
        self._draft = ""

    def restore(self, text: str) -> None:
        """Put a prompt back (a send that was refused) unless the user typed something new."""
        if not self.text.strip():
            self.set_text(text)

    def set_text(self, text: str) -> None:
        self._pastes.clear()
        self._typed.clear()
        self._burst = None
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
        text = event.character if event.is_printable else self._burst_text_key(event.key)
        if text and not self.read_only:
            event.stop()
            event.prevent_default()
            self._typed.append(text)
            if not self._key_queued():
                self._insert_typed()
            return
        self._insert_typed()  # what was typed before this key comes first
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

    # -- keys typed faster than a person types ----------------------------------------------

    def _key_queued(self) -> bool:
        """Another key is already waiting for this widget (Textual has no public peek)."""
        return isinstance(self._peek_message(), events.Key)

    def _burst_text_key(self, key: str) -> str | None:
        """Enter or Tab as text, when they come in the middle of a long burst. (An input
        method sends a syllable and Enter together: that Enter still sends.)"""
        if key not in BURST_TEXT_KEYS or not self._key_queued():
            return None
        if self._message_queue.qsize() >= BURST_TEXT_KEYS_BEHIND:
            return BURST_TEXT_KEYS[key]
        burst = self._burst
        gathered = sum(map(len, self._typed))
        if burst is not None and self._continues(burst):
            gathered += burst.chars
        return BURST_TEXT_KEYS[key] if gathered >= BURST_TEXT_CHARS else None

    def _continues(self, burst: TypedBurst) -> bool:
        recent = time.monotonic() - burst.last_at < BURST_GAP_S
        return recent and self.selection.is_empty and self.cursor_location == burst.end

    def _insert_typed(self) -> None:
        """Insert the gathered keys as one edit (behind a placeholder once the burst they
        belong to is longer than PASTE_INLINE_LIMIT)."""
        if not self._typed:
            return
        text = "".join(self._typed)
        self._typed.clear()
        burst = self._burst
        if burst is None or not self._continues(burst):
            start = min(self.selection.start, self.selection.end)
            burst = self._burst = TypedBurst(start, start)
        burst.parts.append(text)
        burst.chars += len(text)
        burst.last_at = time.monotonic()
        if burst.marker is None and burst.chars <= PASTE_INLINE_LIMIT:
            self._replace_via_keyboard(text, *self.selection)
        else:
            if burst.marker is not None:
                del self._pastes[burst.marker]
            whole = "".join(burst.parts)
            burst.parts = [whole]
            burst.marker = self._paste_marker(whole)
            self._pastes[burst.marker] = whole
            # From where the burst began to the end of any selection it replaces.
            self.replace(burst.marker, burst.start, max(self.selection))
        burst.end = self.cursor_location

    # -- large pastes ---------------------------------------------------------------------

    async def _on_paste(self, event: events.Paste) -> None:
        if len(event.text) <= PASTE_INLINE_LIMIT:
            return  # TextArea's own handler inserts it
        event.stop()
        event.prevent_default()
        self._insert_paste(event.text)

    def _insert_paste(self, text: str) -> None:
        self._insert_typed()
        marker = self._paste_marker(text)
        self._pastes[marker] = text
        self.insert(marker)

    def _paste_marker(self, text: str) -> str:
        lines = text.count("\n") + 1
        return f"[pasted text #{len(self._pastes) + 1}: {len(text):,} characters, {lines:,} lines]"

"""The multi-line prompt: Enter sends, Shift+Enter or Ctrl+J adds a line, Up recalls.

A very large paste (a whole file, a 1 MB log) is kept aside and shown as a one-line placeholder,
so the editor never has to lay out a megabyte; it is put back in place when the prompt is sent.

A terminal without bracketed paste types a paste as keys, one event each. Inserted one by one,
every key re-wrapped the whole input (a 200 KB paste never finished, and kept the app from
hearing anything else). Keys the terminal delivers closer together than anyone types are a burst
(``chatapp.ui.widgets.typed_paste``): what it types is inserted every ``BURST_FLUSH_S`` instead of
per key, it goes behind a placeholder like a bracketed paste once it is longer than
``PASTE_INLINE_LIMIT``, and Enter inside it is a line break — an Enter that ends a burst still
sends, once no key has followed it for ``BURST_END_S`` (an input method commits a syllable and
Enter together).
"""

from __future__ import annotations

import time

from textual import events
from textual.message import Message
from textual.timer import Timer
from textual.widgets import TextArea

from chatapp.ui.widgets.typed_paste import KeyTiming, TypedBurst

PASTE_INLINE_LIMIT = 16_000
"""Pastes longer than this (in characters) are held aside behind a placeholder."""
BURST_FLUSH_S = 0.05
"""While a burst lasts, what it typed is inserted this often (each insert re-wraps)."""
BURST_END_S = 0.1
"""An Enter at the end of a burst sends once this long has passed with no key after it."""
BURST_TEXT_KEYS = {"tab": "\t", "ctrl+j": "\n", "newline": "\n", "shift+enter": "\n"}
"""Keys that are text inside a burst (Enter too, decided when the next key comes)."""

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
        """Text of a burst's keys not inserted yet."""
        self._burst: TypedBurst | None = None
        self._timing = KeyTiming()
        self._enter_pending = False
        self._flush_timer: Timer | None = None
        self._last_key_at = 0.0

    # -- sending --------------------------------------------------------------------------

    def expanded_text(self) -> str:
        """The prompt as it will be sent: placeholders replaced by what was pasted."""
        text = self.text
        for marker, pasted in self._pastes.items():
            text = text.replace(marker, pasted)
        return text

    def submit(self) -> None:
        self._insert_typed()
        text = self.expanded_text()
        if text.strip():
            self.post_message(self.Submitted(self, text))

    def clear_prompt(self) -> None:
        self.clear()
        self._forget_burst()
        self._history_index = None
        self._draft = ""

    def restore(self, text: str) -> None:
        """Put a prompt back (a send that was refused) unless the user typed something new."""
        if not self.text.strip():
            self.set_text(text)

    def set_text(self, text: str) -> None:
        self._forget_burst()
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
        if self._burst_key(event):
            event.stop()
            event.prevent_default()
            return
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

    def _burst_key(self, event: events.Key) -> bool:
        """Take a key that is text into the burst (True), inserting at once when it is not in
        one; other keys come after what was typed before them (False)."""
        fast = self._timing.note(event.time, min(self.selection))
        self._last_key_at = time.monotonic()
        if self._enter_pending:
            self._enter_pending = False
            if fast:
                self._typed.append("\n")  # a key right behind it: the Enter was a line break
            else:
                self.submit()  # the app was too busy to send it when the burst ended
        if self.read_only:
            return False
        if fast and event.key == "enter":
            self._enter_pending = True
            self._schedule_flush()
            return True
        text = event.character if event.is_printable else None
        if fast and text is None:
            text = BURST_TEXT_KEYS.get(event.key)
        if text is None:
            self._insert_typed()
            return False
        self._typed.append(text)
        if fast:
            self._schedule_flush()
        else:
            self._insert_typed()
        return True

    def _schedule_flush(self) -> None:
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(BURST_FLUSH_S, self._flush_burst)

    def _flush_burst(self) -> None:
        self._flush_timer = None
        self._insert_typed()
        if not self._enter_pending:
            return
        if time.monotonic() - self._last_key_at < BURST_END_S:
            self._schedule_flush()  # more keys may follow the Enter: wait a little more
        else:
            self._enter_pending = False
            self.submit()

    def _forget_burst(self) -> None:
        self._pastes.clear()
        self._typed.clear()
        self._burst = None
        self._enter_pending = False
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None

    def _insert_typed(self) -> None:
        """Insert what the burst typed as one edit; behind a placeholder once the burst holds
        more than PASTE_INLINE_LIMIT characters."""
        if not self._typed:
            return
        text = "".join(self._typed)
        self._typed.clear()
        burst = self._burst
        here = min(self.selection)
        if burst is None or not burst.continues(self._timing, self.selection, self.cursor_location):
            start = self._timing.streak_start if self._timing.streak_start <= here else here
            burst = self._burst = TypedBurst(start, here, self._timing.streak)
        if burst.marker is None and burst.chars + len(text) <= PASTE_INLINE_LIMIT:
            self._replace_via_keyboard(text, *self.selection)
            burst.chars += len(text)
        else:
            if burst.marker is None:
                whole = self.get_text_range(burst.start, burst.end) + text
            else:
                del self._pastes[burst.marker]
                whole = burst.text + text
            burst.text = whole
            burst.marker = self._paste_marker(whole)
            self._pastes[burst.marker] = whole
            # From where the burst began to the end of any selection it replaces.
            self.replace(burst.marker, burst.start, max(self.selection))
        burst.end = self.cursor_location

    # -- large pastes ---------------------------------------------------------------------

    async def _on_paste(self, event: events.Paste) -> None:
        # One edit, inline or behind a placeholder; pastes that follow each other closely (a
        # long paste typed as keys arrives as several) join the same placeholder.
        event.stop()
        event.prevent_default()
        if self.read_only:
            return
        self._timing.note_paste(event.time, min(self.selection))
        self._last_key_at = time.monotonic()
        if self._enter_pending:  # a paste right behind it: the Enter was a line break
            self._enter_pending = False
            self._typed.append("\n")
        self._typed.append(event.text)
        self._insert_typed()

    def _insert_paste(self, text: str) -> None:
        self._insert_typed()
        marker = self._paste_marker(text)
        self._pastes[marker] = text
        self.insert(marker)

    def _paste_marker(self, text: str) -> str:
        lines = text.count("\n") + 1
        return f"[pasted text #{len(self._pastes) + 1}: {len(text):,} characters, {lines:,} lines]"

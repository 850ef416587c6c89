"""A terminal driver that hands a paste typed as keys to the app as one paste.

A terminal without bracketed paste sends a paste as ordinary keys, and Textual makes one event
per key and passes each through the app, the screen and the focused widget: measured here, a
bare Textual app took in ~1,500 keys a second, so a 200 KB paste took minutes to arrive even
where the prompt handled each key cheaply. The terminal delivers such keys microseconds apart,
a person's (or an input method's syllable) far fewer of them that close. This driver's input
thread holds back the keys that come within ``PROGRAM_KEY_GAP_S`` of the one before; a run of at
least ``PASTE_RUN_KEYS`` of them, ended by a pause or another kind of input, reaches the app as
one ``Paste`` (an Enter in it is a line break, as in a bracketed paste; one that ends it stays
a key), a shorter run as the keys it was. The prompt then inserts it once (``chatapp.ui.widgets.prompt``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from textual import events
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

from chatapp.ui.widgets.typed_paste import PROGRAM_KEY_GAP_S

PASTE_RUN_KEYS = 16
"""A run of close keys at least this long is a paste (an input method commits far fewer)."""
RUN_TEXT_LIMIT = 4096
"""A longer run is passed on in pieces of this size (each a Paste the prompt joins)."""
RUN_TEXT_KEYS = {"enter": "\n", "tab": "\t", "ctrl+j": "\n", "newline": "\n"}


class PasteRunDriver(LinuxDriver):
    """LinuxDriver whose input thread turns runs of keys typed by a program into pastes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._run: list[events.Key] = []
        self._run_lock = threading.Lock()
        self._last_key_at = 0.0
        self._flusher: threading.Timer | None = None

    def process_message(self, message: Message) -> None:
        text = _key_text(message)
        with self._run_lock:
            now = time.monotonic()
            close = now - self._last_key_at < PROGRAM_KEY_GAP_S
            if text is not None:
                self._last_key_at = now
            if text is not None and (close or self._run):
                assert isinstance(message, events.Key)
                self._run.append(message)
                if len(self._run) >= RUN_TEXT_LIMIT:
                    self._pass_run()
                self._flush_later()
                return
            self._pass_run()
            super().process_message(message)

    def _flush_later(self) -> None:
        """Pass the run on once the keys pause (the input thread is then waiting in select)."""
        if self._flusher is None:
            self._flusher = threading.Timer(PROGRAM_KEY_GAP_S, self._flush_if_quiet)
            self._flusher.daemon = True
            self._flusher.start()

    def _flush_if_quiet(self) -> None:
        with self._run_lock:
            self._flusher = None
            if not self._run:
                return
            if time.monotonic() - self._last_key_at < PROGRAM_KEY_GAP_S:
                self._flush_later()
            else:
                self._pass_run()

    def _pass_run(self) -> None:
        """(Lock held.) The run as one paste when long enough, else as its keys. Enter at the
        end of a run stays a key: typed text and then Enter (``send-keys``, an expect script)
        sends, and if more of the paste follows, the prompt makes it a line break."""
        run, self._run = self._run, []
        ending: list[events.Key] = []
        while run and run[-1].key == "enter":
            ending.insert(0, run.pop())
        if len(run) >= PASTE_RUN_KEYS:
            text = "".join(_key_text(key) or "" for key in run)
            super().process_message(events.Paste(text))
            run = []
        for key in [*run, *ending]:
            super().process_message(key)

    def close(self) -> None:
        with self._run_lock:
            if self._flusher is not None:
                self._flusher.cancel()
        super().close()


def _key_text(message: Message) -> str | None:
    """What a key types, for keys that are text in a paste (None for anything else)."""
    if not isinstance(message, events.Key):
        return None
    if message.is_printable:
        return message.character
    return RUN_TEXT_KEYS.get(message.key)

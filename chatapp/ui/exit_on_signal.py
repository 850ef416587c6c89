"""SIGTERM and SIGHUP (a closed terminal) end the chat within about a second, whatever it is doing.

The handler is a plain ``signal.signal`` one: Python runs it in the main thread between two
bytecodes, so it runs even while the event loop is flooded (a paste typed as thousands of keys
kept Textual's message pumps busy without ever returning to the loop, so an asyncio signal
handler never ran and the process outlived its terminal). It stops the reply being written
(its text so far is kept, ``interrupted``), asks the app to exit with 128 + the signal, and
starts a watchdog: if the process is still here ``SIGNAL_EXIT_S`` later (Textual's shutdown
waiting on a terminal that is gone, a queue of keys still draining, a model closing), every reply
still being written is stored as ``interrupted`` (``interrupt_open_replies``), the terminal is
put back as far as it can be, and the process leaves with ``os._exit``. A second signal leaves at
once the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

SIGNAL_EXIT_S = 0.6
"""After SIGTERM/SIGHUP the process is gone within about this long (plus storing the reply)."""
FLUSH_WAIT_S = 0.15
"""How long leaving at once waits for the open replies to be stored (a write is milliseconds)."""
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

RESTORE_TERMINAL = (
    "\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l"  # mouse reporting off
    "\x1b[?2004l"  # bracketed paste off
    "\x1b[?7h"  # line wrap on
    "\x1b[<u"  # kitty keyboard protocol off (before leaving the alt screen)
    "\x1b[?1049l\x1b[?25h\x1b[?1004l"  # main screen, cursor shown, focus events off
)
"""What Textual's driver writes when it stops, written again when the process leaves at once."""


class SignalledApp(Protocol):
    """What the handler needs of the chat app (``chatapp.ui.app.ChatApp``)."""

    exit_signal: int | None

    def stop_generation(self, timeout: float) -> None: ...
    def exit(self, result: Any = None, return_code: int = 0, message: Any = None) -> None: ...


def end_on_signals(app: SignalledApp) -> Callable[[], None]:
    """Install the handlers for ``app`` (main thread only); returns what puts the previous
    handlers back."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: object) -> None:
        code = 128 + signum
        if app.exit_signal is not None:  # a second signal: no more waiting
            leave_now(app, code)
        app.exit_signal = signum
        app.stop_generation(0)  # sets the reply's cancel token; the worker stores it
        threading.Thread(
            target=_leave_later, args=(app, code), name="exit-after-signal", daemon=True
        ).start()
        with contextlib.suppress(RuntimeError):  # no loop running: app.run() has returned
            asyncio.get_running_loop().call_soon_threadsafe(app.exit, None, code)

    for signum in EXIT_SIGNALS:
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore


def _leave_later(app: SignalledApp, code: int) -> None:
    time.sleep(SIGNAL_EXIT_S)
    leave_now(app, code)


def leave_now(app: SignalledApp, code: int) -> None:
    """Store every reply still being written as interrupted, restore the terminal, exit."""
    from chatapp.session.reply_writer import interrupt_open_replies

    for step in (interrupt_open_replies, lambda: _restore_terminal(app)):
        # Each in a thread of its own with a deadline: a database or a terminal that blocks
        # must not keep the process alive.
        worker = threading.Thread(target=step, daemon=True)
        worker.start()
        worker.join(FLUSH_WAIT_S)
    os._exit(code)


def _restore_terminal(app: SignalledApp) -> None:
    """Textual's terminal settings undone (its driver keeps the settings from before)."""
    driver: Any = getattr(app, "_driver", None)
    stdin = getattr(driver, "fileno", None)
    output = getattr(driver, "_file", None)
    if not isinstance(stdin, int) or output is None or not os.isatty(stdin):
        return
    import termios

    attrs = getattr(driver, "attrs_before", None)
    with contextlib.suppress(OSError, ValueError, termios.error):
        if attrs is not None:
            termios.tcsetattr(stdin, termios.TCSANOW, attrs)
        os.write(output.fileno(), RESTORE_TERMINAL.encode())

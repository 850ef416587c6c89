"""SIGTERM and SIGHUP end a command the way Ctrl+C does.

A closed terminal (SIGHUP), ``kill`` or a service manager (SIGTERM) stop ``chatapp ask`` or
``chatapp run`` mid-reply: the handler raises KeyboardInterrupt in the main thread, so the
session stores the partial reply as interrupted exactly as for Ctrl+C, and ``main`` exits with
the conventional code for the signal (128 + its number: 143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import contextlib
import signal
from types import FrameType

_received: list[int] = []

HANDLED = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def end_turns_on_signals() -> None:
    """Install the handlers (main thread only; once per process)."""
    for signum in HANDLED:
        # ValueError: not the main thread; OSError: the platform refuses.
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, _interrupt)


def exit_code_for_interrupt() -> int:
    """128 + the signal that ended the command, or 130 (Ctrl+C) when none did."""
    return 128 + _received[0] if _received else 130

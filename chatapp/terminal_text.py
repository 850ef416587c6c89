"""Text from models and documents, made safe to print on a terminal.

A model's reply or an indexed document can hold bytes that drive the terminal instead of being
shown: ESC sequences (colours, cursor moves, window titles, OSC 52 clipboard writes), carriage
returns that overwrite a line, other C0/C1 control characters, and Unicode bidirectional
overrides that make text read differently than it is. ``safe_for_terminal`` shows each of them
escaped (``\\x1b``, ``\\r``, ``\\u202e``); newline and tab stay as they are. It works piece by
piece (each character is judged alone), so streamed replies can be escaped token by token.
"""

from __future__ import annotations

import re
from typing import IO, Any

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r":
        return "\\r"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_for_terminal(text: str) -> str:
    """``text`` with every character that would act on the terminal shown escaped."""
    return _UNSAFE.sub(_escaped, text)


def has_terminal_controls(text: str) -> bool:
    return _UNSAFE.search(text) is not None


def is_terminal(stream: IO[Any] | Any) -> bool:
    """True when ``stream`` is an interactive terminal (not a file, a pipe or a closed stream)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def for_stream(text: str, stream: IO[Any] | Any) -> str:
    """``text`` escaped when it goes to a terminal; unchanged for files and pipes, so
    ``chatapp history export > file`` keeps the stored text byte for byte."""
    return safe_for_terminal(text) if is_terminal(stream) else text

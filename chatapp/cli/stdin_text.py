"""Text that arrives from outside the program: piped stdin and command-line arguments.

Both reach the conversation store, which holds UTF-8 text only. Python hands undecodable bytes
over as lone surrogates (``\\udce9`` for byte 0xE9), which SQLite then refuses with a traceback;
here they become one clear line instead: which input, which byte, and how to convert it.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Sequence
from typing import IO, Any

from chatapp.errors import UsageError

_HINT = "convert it to UTF-8 first, e.g. `iconv -f cp949 -t utf-8` (Korean) or `-f latin1`"


def _encoding_of(stream: Any) -> str:
    name = getattr(stream, "encoding", None) or "utf-8"
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        return "utf-8"
    # The C/POSIX locale says ASCII; bytes above 127 there are meant as UTF-8.
    return "utf-8" if canonical in ("ascii", "utf-8") else canonical


def decode_input(data: bytes, what: str, encoding: str = "utf-8") -> str:
    """``data`` as text; UsageError naming ``what``, the bad byte and its offset otherwise.
    A UTF-8 byte-order mark is dropped and line endings become ``\\n``."""
    try:
        text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        label = "UTF-8" if encoding == "utf-8" else encoding
        raise UsageError(
            f"{what}: not valid {label} text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); {_HINT}"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise UsageError(f"{what}: binary data, not text (a NUL byte at character {nul})")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_stdin_text(stream: IO[Any] | None = None) -> str:
    """All of stdin as text ("" when stdin is closed or absent); UsageError (exit 2) naming
    stdin and the encoding problem for bytes that are not text."""
    stream = sys.stdin if stream is None else stream
    if stream is None:
        return ""
    raw = getattr(stream, "buffer", None)
    try:
        if raw is None:  # a text-only stream (tests, embedding): check what it decoded
            return check_text(stream.read(), "stdin")
        data = raw.read()
    except (OSError, ValueError):
        return ""
    return decode_input(data, "stdin", _encoding_of(stream))


def undecodable_byte(text: str) -> int | None:
    """The first byte Python could not decode (it stands in ``text`` as a lone surrogate)."""
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return code - 0xDC00 if 0xDC80 <= code <= 0xDCFF else code
    return None


def check_text(text: str, what: str) -> str:
    """``text`` unchanged when it is valid Unicode; UsageError naming ``what`` otherwise."""
    bad = undecodable_byte(text)
    if bad is None:
        return text
    where = text.index(next(c for c in text if 0xD800 <= ord(c) <= 0xDFFF))
    byte = f"byte 0x{bad:02x}" if bad < 0x100 else f"lone surrogate U+{bad:04X}"
    raise UsageError(f"{what}: not valid UTF-8 text ({byte} at character {where}); {_HINT}")


def check_arguments(args: Sequence[str]) -> None:
    """UsageError for the first command-line argument holding bytes that are not UTF-8."""
    for number, arg in enumerate(args, start=1):
        check_text(arg, f"argument {number}")

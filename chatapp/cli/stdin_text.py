"""Text that arrives from outside the program: piped stdin, ``@file`` values and command-line
arguments.

Both reach the conversation store, which holds UTF-8 text only. Python hands undecodable bytes
over as lone surrogates (``\\udce9`` for byte 0xE9), which SQLite then refuses with a traceback;
here they become one clear line instead: which input, which byte, and how to convert it.

Stdin and files are read up to a cap (``input_cap_bytes``: the configured context in bytes,
with a wide margin), so ``chatapp ask - < /dev/zero`` or ``yes | chatapp ask -`` is one line and
exit 2 instead of reading until memory runs out.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from chatapp.errors import UsageError

_HINT = "convert it to UTF-8 first, e.g. `iconv -f cp949 -t utf-8` (Korean) or `-f latin1`"
MIN_INPUT_CAP = 1024 * 1024
BYTES_PER_TOKEN = 16
"""A token is about 4 bytes of English or 4-5 of Korean; four times that is the margin."""
_READ_SIZE = 64 * 1024


def input_cap_bytes(n_ctx: int | None = None) -> int:
    """The most bytes of input a prompt may bring: the context (``n_ctx``, else the configured
    ``model.n_ctx``) at ``BYTES_PER_TOKEN``, and never under ``MIN_INPUT_CAP``."""
    if n_ctx is None:
        from chatapp.config import load_settings
        from chatapp.errors import ChatappError

        try:
            n_ctx = load_settings().model.n_ctx
        except (ChatappError, ValueError):
            n_ctx = 0  # a broken config is reported by the command itself
    return max(MIN_INPUT_CAP, n_ctx * BYTES_PER_TOKEN)


def _too_much(what: str, cap: int) -> UsageError:
    return UsageError(
        f"{what}: more than {cap / (1024 * 1024):g} MiB, more text than the model's context "
        "can hold; give a shorter text (or set a larger model.n_ctx)"
    )


def read_capped(read: Any, what: str, cap: int) -> bytes:
    """Bytes from ``read(size)`` until it returns nothing; UsageError past ``cap`` bytes."""
    data = bytearray()
    while True:
        piece = read(min(_READ_SIZE, cap + 1 - len(data)))
        if not piece:
            return bytes(data)
        data += piece
        if len(data) > cap:
            raise _too_much(what, cap)


def read_text_file(path: os.PathLike[str] | str, what: str, cap: int | None = None) -> str:
    """A file's text (a regular file, a pipe or a device), read up to ``cap`` bytes (default
    ``input_cap_bytes()``); UsageError naming ``what`` for too much, for bytes that are not
    UTF-8 text, or for a file that cannot be read."""
    limit = input_cap_bytes() if cap is None else cap
    with open(path, "rb") as handle:
        data = read_capped(handle.read, what, limit)
    return decode_input(data, what)


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


def read_stdin_text(stream: IO[Any] | None = None, cap: int | None = None) -> str:
    """All of stdin as text ("" when stdin is closed or absent); UsageError (exit 2) naming
    stdin and the problem for bytes that are not text or more than ``cap`` bytes (default
    ``input_cap_bytes()``)."""
    stream = sys.stdin if stream is None else stream
    if stream is None:
        return ""
    raw = getattr(stream, "buffer", None)
    cap = input_cap_bytes() if cap is None else cap
    try:
        if raw is None:  # a text-only stream (tests, embedding): check what it decoded
            text = stream.read(cap + 1)
            if len(text) > cap:
                raise _too_much("stdin", cap)
            return check_text(text, "stdin")
        data = read_capped(raw.read, "stdin", cap)
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

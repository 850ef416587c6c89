"""Write a minimal but valid GGUF file (header + metadata, no tensors) for registry tests.

Real loads use the bundled model; these files only need to pass the header check that
``chatapp models add`` does, and to be small enough to create in every test.
"""

from __future__ import annotations

import struct
from pathlib import Path

_UINT32, _STRING = 4, 8


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_tiny_gguf(
    path: Path,
    *,
    architecture: str = "llama",
    name: str = "tiny",
    context_length: int = 2048,
    chat_template: str | None = None,
) -> Path:
    """A GGUF v3 file with a few metadata keys and no tensors."""
    items: list[tuple[str, int, bytes]] = [
        ("general.architecture", _STRING, _string(architecture)),
        ("general.name", _STRING, _string(name)),
        (f"{architecture}.context_length", _UINT32, struct.pack("<I", context_length)),
    ]
    if chat_template is not None:
        items.append(("tokenizer.chat_template", _STRING, _string(chat_template)))
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(items))
    for key, value_type, value in items:
        body += _string(key) + struct.pack("<I", value_type) + value
    body += b"\0" * (-len(body) % 32)  # the data section starts aligned
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path

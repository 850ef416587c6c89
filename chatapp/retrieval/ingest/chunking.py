"""Blocks → chunks sized in embedder tokens, following the document's structure.

Rules, in order: a chunk never spans two PDF pages; a heading starts a new chunk once the current
one is at least half full (small sections are packed together, big ones start fresh); a block too
big for one chunk is split into sentences (prose) or lines (code, tables), and a piece still too
big is cut at whitespace; consecutive chunks of the same section share ``overlap`` tokens of
trailing sentences so a fact on a boundary is found from both sides. Every chunk keeps its line
range (or page), and the heading path where it starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from chatapp.retrieval.ingest.markup import Block

TokenCounter = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+(?=\S)|\n\s*\n")


@dataclass
class Chunk:
    text: str
    start_line: int
    end_line: int
    page: int | None
    heading: tuple[str, ...]
    tokens: int

    @property
    def heading_text(self) -> str:
        return " > ".join(self.heading)


@dataclass
class _Unit:
    text: str
    start_line: int
    end_line: int
    page: int | None
    heading: tuple[str, ...]
    tokens: int
    kind: str
    whole_block: bool


def _split_sentences(block: Block) -> list[tuple[str, int, int]]:
    """(sentence, start_line, end_line) for prose; (line, n, n) for code and tables."""
    if block.kind in ("code", "table"):
        pieces = []
        for offset, line in enumerate(block.text.split("\n")):
            if line.strip():
                pieces.append((line, block.start_line + offset, block.start_line + offset))
        return pieces
    pieces = []
    position = 0
    for match in [*_SENTENCE_END.finditer(block.text), None]:
        end = match.start() if match else len(block.text)
        piece = block.text[position:end]
        if piece.strip():
            first = block.start_line + block.text.count("\n", 0, position)
            last = first + piece.count("\n")
            pieces.append((piece.strip(), first, min(last, block.end_line)))
        position = match.end() if match else len(block.text)
    return pieces


def _cut_long(text: str, tokens: int, max_tokens: int, count: TokenCounter) -> list[str]:
    """Cut a piece with no sentence boundary into windows of about max_tokens, at whitespace."""
    chars_per_window = max(16, int(len(text) * max_tokens / max(tokens, 1) * 0.9))
    pieces: list[str] = []
    rest = text
    while rest:
        if len(rest) <= chars_per_window:
            pieces.append(rest)
            break
        cut = rest.rfind(" ", chars_per_window // 2, chars_per_window)
        cut = cut if cut > 0 else chars_per_window
        pieces.append(rest[:cut])
        rest = rest[cut:].lstrip()
    out: list[str] = []
    for piece in pieces:
        if not piece.strip():
            continue
        piece_tokens = count(piece) if len(pieces) > 1 else tokens
        if piece_tokens > max_tokens and len(piece) > 16 and len(pieces) > 1:
            out.extend(_cut_long(piece, piece_tokens, max_tokens, count))  # denser than average
        else:
            out.append(piece)
    return out


def _units(blocks: list[Block], count: TokenCounter, max_tokens: int) -> list[_Unit]:
    units: list[_Unit] = []
    for block in blocks:
        text = block.text.strip("\n")
        if not text.strip():
            continue
        tokens = count(text)
        if tokens <= max_tokens:
            units.append(
                _Unit(
                    text,
                    block.start_line,
                    block.end_line,
                    block.page,
                    block.heading,
                    tokens,
                    block.kind,
                    True,
                )
            )
            continue
        for piece, first, last in _split_sentences(block):
            piece_tokens = count(piece)
            if piece_tokens <= max_tokens:
                units.append(
                    _Unit(
                        piece,
                        first,
                        last,
                        block.page,
                        block.heading,
                        piece_tokens,
                        block.kind,
                        False,
                    )
                )
                continue
            for part in _cut_long(piece, piece_tokens, max_tokens, count):
                units.append(
                    _Unit(
                        part, first, last, block.page, block.heading, count(part), block.kind, False
                    )
                )
    return units


def _joined(units: list[_Unit]) -> str:
    out: list[str] = []
    for previous, unit in zip([None, *units[:-1]], units, strict=True):
        if previous is None:
            out.append(unit.text)
        elif previous.whole_block or unit.whole_block or previous.kind != unit.kind:
            out.append("\n\n" + unit.text)
        elif unit.kind in ("code", "table") or unit.start_line != previous.end_line:
            out.append("\n" + unit.text)
        else:
            out.append(" " + unit.text)
    return "".join(out)


def _make_chunk(units: list[_Unit], count: TokenCounter) -> Chunk:
    text = _joined(units)
    return Chunk(
        text=text,
        start_line=min(u.start_line for u in units),
        end_line=max(u.end_line for u in units),
        page=units[0].page,
        heading=units[0].heading,
        tokens=sum(u.tokens for u in units),
    )


def chunk_blocks(
    blocks: list[Block],
    count_tokens: TokenCounter,
    max_tokens: int = 200,
    overlap: int = 32,
) -> list[Chunk]:
    """Pack a document's blocks into chunks of at most ``max_tokens`` embedder tokens."""
    max_tokens = max(8, max_tokens)
    overlap = max(0, min(overlap, max_tokens // 2))
    chunks: list[Chunk] = []
    current: list[_Unit] = []
    size = 0

    def emit() -> None:
        if any(u.kind != "heading" for u in current):
            chunks.append(_make_chunk(current, count_tokens))

    for unit in _units(blocks, count_tokens, max_tokens):
        if not current:
            current, size = [unit], unit.tokens
            continue
        new_page = unit.page != current[-1].page
        new_section = unit.kind == "heading" and size >= max_tokens // 2
        overflow = size + unit.tokens > max_tokens
        if not (new_page or new_section or overflow):
            current.append(unit)
            size += unit.tokens
            continue
        # Headings at the end of a full chunk belong to what follows them.
        carried: list[_Unit] = []
        while current and current[-1].kind == "heading":
            carried.insert(0, current.pop())
        if current:
            emit()
        if not carried and overflow and not new_page and unit.kind != "heading":
            carried = _overlap_tail(current, overlap, unit)
        current = [*carried, unit]
        size = sum(u.tokens for u in current)
        while size > max_tokens and len(current) > 1:
            size -= current.pop(0).tokens
    if current:
        emit()
    return chunks


def _overlap_tail(previous: list[_Unit], overlap: int, following: _Unit) -> list[_Unit]:
    """Trailing sentences of the previous chunk (same section) worth at most ``overlap``."""
    tail: list[_Unit] = []
    total = 0
    for unit in reversed(previous):
        if unit.heading != following.heading or unit.kind == "heading":
            break
        if total + unit.tokens > overlap:
            break
        tail.insert(0, unit)
        total += unit.tokens
    return tail

"""Reading one file into structural blocks, or a reason why it was skipped.

Formats: Markdown, reStructuredText, HTML, PDF (pypdf; page numbers kept, lines counted within
the page), DOCX (python-docx; "lines" are paragraph numbers), source code, CSV/JSON/logs as text,
and any other file that is valid UTF-8 text. Skipped with a reason: binary files, invalid UTF-8,
empty files, files over the size limit (read whole, so a limit keeps memory bounded: default
50 MB), encrypted or malformed PDFs/DOCX, unreadable files, files deleted while indexing.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from chatapp.retrieval.ingest.markup import (
    Block,
    parse_code,
    parse_html,
    parse_lines,
    parse_markdown,
    parse_plain,
    parse_rst,
)

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024

MARKDOWN = {".md", ".markdown", ".mdx", ".mkd"}
RST = {".rst", ".rest"}
HTML = {".html", ".htm", ".xhtml"}
DATA = {".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".log"}
CODE = {
    ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".kts",
    ".scala", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".go", ".rs", ".rb",
    ".php", ".swift", ".m", ".mm", ".lua", ".pl", ".pm", ".r", ".jl", ".dart", ".ex", ".exs",
    ".erl", ".hs", ".ml", ".clj", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".sql", ".css",
    ".scss", ".less", ".vue", ".svelte", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".conf",
    ".xml", ".cmake", ".gradle", ".tf", ".proto", ".graphql", ".tex", ".bib",
}  # fmt: skip
BINARY = {
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".ico", ".tiff", ".psd", ".mp3", ".wav",
    ".flac", ".ogg", ".mp4", ".mov", ".avi", ".mkv", ".webm", ".zip", ".gz", ".tgz", ".bz2",
    ".xz", ".7z", ".rar", ".tar", ".jar", ".whl", ".exe", ".dll", ".so", ".dylib", ".o", ".a",
    ".class", ".pyc", ".bin", ".gguf", ".safetensors", ".pt", ".onnx", ".npy", ".npz",
    ".sqlite", ".db", ".parquet", ".doc", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".woff",
    ".woff2", ".ttf", ".otf", ".eot", ".dmg", ".iso",
}  # fmt: skip
_SNIFF_BYTES = 8192


class SkipFile(Exception):
    """A file that is not indexed; ``reason`` is shown in the summary."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def file_kind(path: Path) -> str:
    """The loader a file goes to, by extension (``text`` for anything unknown)."""
    suffix = path.suffix.lower()
    for kind, suffixes in (
        ("markdown", MARKDOWN),
        ("rst", RST),
        ("html", HTML),
        ("data", DATA),
        ("code", CODE),
        ("binary", BINARY),
    ):
        if suffix in suffixes:
            return kind
    return {".pdf": "pdf", ".docx": "docx"}.get(suffix, "text")


def _size_text(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def read_file(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[bytes, str]:
    """The file's bytes and their sha256; raises SkipFile for files that cannot be read."""
    if file_kind(path) == "binary":
        raise SkipFile(f"binary format ({path.suffix.lower()})")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SkipFile(
                f"too large ({_size_text(size)} > {_size_text(max_bytes)} limit; --max-file-mb)"
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise SkipFile("deleted while indexing") from None
    except PermissionError:
        raise SkipFile("permission denied") from None
    except IsADirectoryError:
        raise SkipFile("not a regular file") from None
    except OSError as exc:
        import errno

        if exc.errno == errno.ELOOP:
            raise SkipFile("symlink loop") from None
        raise SkipFile(f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:  # grew while we looked
        raise SkipFile(f"too large (> {_size_text(max_bytes)} limit; --max-file-mb)")
    if not data.strip():
        raise SkipFile("empty file")
    return data, hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); raises SkipFile for binary data or invalid UTF-8."""
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise SkipFile("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SkipFile(f"not valid UTF-8 (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise SkipFile("empty file")
    return text


def parse_file(path: Path, data: bytes) -> tuple[str, list[Block]]:
    """The file's kind and blocks; raises SkipFile when it cannot be understood."""
    kind = file_kind(path)
    if kind == "pdf":
        blocks = _pdf_blocks(data)
    elif kind == "docx":
        blocks = _docx_blocks(data)
    else:
        text = decode_text(data)
        parser = {
            "markdown": parse_markdown,
            "rst": parse_rst,
            "html": parse_html,
            "code": parse_code,
            "data": parse_lines,
        }.get(kind, parse_plain)
        blocks = parser(text)
    if not any(b.text.strip() for b in blocks):
        raise SkipFile("no text found" if kind in ("pdf", "docx", "html") else "empty file")
    return kind, blocks


def _pdf_blocks(data: bytes) -> list[Block]:
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed files log dozens of lines
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = bool(reader.decrypt(""))  # many PDFs only restrict printing/copying
            except Exception:
                opened = False
            if not opened:
                raise SkipFile("encrypted PDF (needs a password)")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            for block in parse_plain(page.extract_text() or ""):
                block.page = number
                blocks.append(block)
    except SkipFile:
        raise
    except Exception as exc:  # pypdf raises many types for broken files
        message = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise SkipFile(f"malformed PDF ({message})") from None
    if not blocks:
        raise SkipFile("no extractable text in PDF (scanned images?)")
    return blocks


def _docx_blocks(data: bytes) -> list[Block]:
    try:
        import docx
        from docx.table import Table

        document = docx.Document(io.BytesIO(data))
        items = list(document.iter_inner_content())
    except Exception as exc:
        message = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise SkipFile(f"malformed DOCX ({message})") from None
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, Table):
            rows = [" | ".join(c.text.strip() for c in row.cells) for row in item.rows]
            text = "\n".join(r for r in rows if r.strip(" |"))
            kind = "table"
        else:
            text = item.text.strip()
            style = (item.style.name if item.style is not None else "") or ""
            level = _docx_heading_level(style)
            if level and text:
                path = [(lv, t) for lv, t in path if lv < level] + [(level, text)]
                blocks.append(Block(text, number, number, "heading", tuple(t for _, t in path)))
                continue
            kind = "text"
        if text:
            blocks.append(Block(text, number, number, kind, tuple(t for _, t in path)))
    return blocks


def _docx_heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading"):
        digits = style.removeprefix("Heading").strip()
        return int(digits) if digits.isdigit() else 1
    return 0

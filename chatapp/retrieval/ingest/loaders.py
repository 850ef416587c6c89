"""Reading one file into structural blocks, or a reason why it was skipped.

Formats: Markdown, reStructuredText, HTML, PDF (pypdf; page numbers kept, lines counted within
the page), DOCX (docx_text.py; "lines" are paragraph numbers), source code, CSV/JSON/logs as text,
and any other file that is valid UTF-8 text. Skipped with a reason: binary files, invalid UTF-8,
empty files, files over the size limit (read whole, so a limit keeps memory bounded: default
50 MB; for a DOCX, also what its XML unpacks to), encrypted or malformed PDFs/DOCX, unreadable
files, files deleted while indexing or swapped since the scan (for a symlink, a FIFO, another
file: a scanned file is read only as the scan found it, file_opening.py).
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from chatapp.retrieval.ingest.docx_text import docx_blocks
from chatapp.retrieval.ingest.file_opening import FoundFile, SkipFile, read_found
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


def read_file(item: FoundFile | Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[bytes, str]:
    """The file's bytes and their sha256; raises SkipFile for files that cannot be read. A
    scanned file (``FoundFile``) is read only as the scan found it (``file_opening``)."""
    found = item if isinstance(item, FoundFile) else FoundFile(Path(item), 0, 0)
    path = found.path
    if file_kind(path) == "binary":
        raise SkipFile(f"binary format ({path.suffix.lower()})")
    data, size = read_found(found, max_bytes)
    if size > max_bytes or len(data) > max_bytes:  # len: it grew while we read
        shown = _size_text(max(size, len(data)))
        raise SkipFile(f"too large ({shown} > {_size_text(max_bytes)} limit; --max-file-mb)")
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


def parse_file(
    path: Path, data: bytes, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> tuple[str, list[Block]]:
    """The file's kind and blocks; raises SkipFile when it cannot be understood
    (``max_bytes`` also bounds what a DOCX unpacks to)."""
    kind = file_kind(path)
    if kind == "pdf":
        blocks = _pdf_blocks(data)
    elif kind == "docx":
        blocks = docx_blocks(data, max_bytes)
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

"""Real document files for retrieval tests: PDFs (plain, encrypted, broken), DOCX, small corpora,
and a CLI runner that returns (exit code, stdout, stderr)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest


def make_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one Helvetica text page per string (lines split on newlines)."""
    objects: dict[int, bytes] = {}
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode()
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    for page_id, text in zip(page_ids, pages, strict=True):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in text.split("\n"):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number]
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def make_encrypted_pdf(pages: list[str], password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(pages))))
    writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx(path: Path, parts: list[tuple[str, str]]) -> Path:
    """A DOCX from (style, text) pairs; style "h1"/"h2" for headings, "p" for a paragraph."""
    import docx

    document = docx.Document()
    for style, text in parts:
        if style.startswith("h"):
            document.add_heading(text, level=int(style[1:]))
        else:
            document.add_paragraph(text)
    document.save(str(path))
    return path


def write_corpus(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def index_corpus(root: Path, name: str, files: dict[str, str]) -> Path:
    """Write ``files`` under ``root`` and index them as collection ``name`` with the
    deterministic hashing embedder (real chromadb, in the test's CHATAPP_HOME)."""
    from chatapp.embedding.embedder import HashingEmbedder
    from chatapp.retrieval.ingest.indexing import index_paths
    from chatapp.retrieval.store.collection import create_or_open

    corpus = write_corpus(root, files)
    coll = create_or_open(name, embedder="hashing", chunk_tokens=120, chunk_overlap=0)
    try:
        index_paths(coll, [corpus], HashingEmbedder)
    finally:
        coll.close()
    return corpus


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``chatapp ARGV`` in-process; the exit code, stdout and stderr."""
    from chatapp.cli import main

    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


CORPUS = {
    "garden/tomatoes.md": (
        "# Growing tomatoes\n\nTomatoes need at least eight hours of direct sun each day.\n\n"
        "## Watering\n\nWater tomatoes deeply twice a week, at the base of the plant.\n"
    ),
    "garden/roses.md": (
        "# Roses\n\nPrune roses in late winter, just before the buds swell.\n\n"
        "## Feeding\n\nFeed roses with compost in spring.\n"
    ),
    "kitchen/bread.txt": (
        "Sourdough bread needs a lively starter.\n\nBake the loaf at 230 degrees Celsius for "
        "forty minutes, with steam for the first twenty.\n"
    ),
    "code/server.py": (
        "import socket\n\n\ndef open_port(port: int) -> socket.socket:\n"
        '    """Listen on the given TCP port."""\n    sock = socket.socket()\n'
        "    sock.bind(('127.0.0.1', port))\n    return sock\n"
    ),
}

"""Loaders and file discovery: every format becomes blocks with lines/pages and heading paths;
every bad file becomes a skip reason; hidden, .gitignore'd and excluded paths are left out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatapp.errors import UsageError
from chatapp.retrieval.ingest.discovery import discover
from chatapp.retrieval.ingest.loaders import SkipFile, parse_file, read_file
from tests.support.documents import make_docx, make_encrypted_pdf, make_pdf


def blocks_of(path: Path) -> tuple[str, list]:
    data, _ = read_file(path)
    return parse_file(path, data)


def skip_reason(path: Path, **kwargs: int) -> str:
    with pytest.raises(SkipFile) as info:
        data, _ = read_file(path, **kwargs)
        parse_file(path, data)
    return info.value.reason


def test_markdown_headings_code_and_lines(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(
        "---\ntitle: x\n---\n# Guide\n\nIntro text.\n\n## Install\n\nRun the installer.\n\n"
        "```sh\nmake install\n\nmake test\n```\n\nSetext\n======\n\nBody.\n",
        encoding="utf-8",
    )
    kind, blocks = blocks_of(doc)
    assert kind == "markdown"
    by_text = {b.text: b for b in blocks}
    assert by_text["Intro text."].heading == ("Guide",)
    assert by_text["Run the installer."].heading == ("Guide", "Install")
    assert by_text["Run the installer."].start_line == 10
    code = next(b for b in blocks if b.kind == "code")
    assert "make install\n\nmake test" in code.text  # a blank line inside a fence stays inside
    assert (code.start_line, code.end_line) == (12, 16)
    assert by_text["Body."].heading == ("Setext",)
    assert "title: x" not in " ".join(b.text for b in blocks)


def test_rst_titles_and_literal_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "cmd.rst"
    doc.write_text(
        "my_command\n----------\n\nDo a thing.\n\n.. code-block:: cmake\n\n  my_command(X)\n\n"
        "Options\n^^^^^^^\n\nThe X option.\n",
        encoding="utf-8",
    )
    _, blocks = blocks_of(doc)
    assert blocks[0].kind == "heading" and blocks[0].text == "my_command"
    code = next(b for b in blocks if b.kind == "code")
    assert code.text.strip() == "my_command(X)" and code.start_line == 8
    option = next(b for b in blocks if b.text == "The X option.")
    assert option.heading == ("my_command", "Options")


def test_html_visible_text_only(tmp_path: Path) -> None:
    doc = tmp_path / "page.html"
    doc.write_text(
        "<html><head><title>t</title><script>var x = 1;</script></head>\n<body>\n"
        "<h1>Manual</h1>\n<p>First &amp; foremost.</p>\n<nav>menu</nav>\n<pre>code line</pre>\n"
        "</body></html>",
        encoding="utf-8",
    )
    _, blocks = blocks_of(doc)
    texts = [b.text for b in blocks]
    assert "First & foremost." in texts
    assert not any("var x" in t or "menu" in t for t in texts)
    para = next(b for b in blocks if b.text == "First & foremost.")
    assert para.heading == ("Manual",) and para.start_line == 4
    assert any(b.kind == "code" and b.text == "code line" for b in blocks)


def test_source_code_blocks_carry_the_definition(tmp_path: Path) -> None:
    doc = tmp_path / "app.py"
    doc.write_text(
        "import os\n\n\nclass Store:\n    def get(self):\n        return 1\n\n"
        "    def put(self):\n        return 2\n",
        encoding="utf-8",
    )
    kind, blocks = blocks_of(doc)
    assert kind == "code"
    put = next(b for b in blocks if "def put" in b.text)
    assert put.heading == ("class Store", "def put") and put.start_line == 8


@pytest.mark.parametrize("name", ["rows.csv", "data.json"])
def test_data_files_are_text_lines(tmp_path: Path, name: str) -> None:
    doc = tmp_path / name
    doc.write_text('a,b\n1,2\n\n{"k": 3}\n', encoding="utf-8")
    kind, blocks = blocks_of(doc)
    assert kind == "data"
    assert [(b.text, b.start_line) for b in blocks][-1] == ('{"k": 3}', 4)


def test_pdf_keeps_page_numbers(tmp_path: Path) -> None:
    doc = tmp_path / "paper.pdf"
    doc.write_bytes(make_pdf(["Alpha page one.", "Beta page two.\nSecond line."]))
    kind, blocks = blocks_of(doc)
    assert kind == "pdf"
    pages = {b.page: b.text for b in blocks}
    assert "Alpha" in pages[1] and "Beta" in pages[2] and "Second line." in pages[2]


def test_encrypted_pdf_is_skipped(tmp_path: Path) -> None:
    doc = tmp_path / "locked.pdf"
    doc.write_bytes(make_encrypted_pdf(["Top secret."]))
    assert skip_reason(doc) == "encrypted PDF (needs a password)"


def test_malformed_pdf_is_skipped(tmp_path: Path) -> None:
    doc = tmp_path / "broken.pdf"
    doc.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\ngarbage")
    assert skip_reason(doc).startswith("malformed PDF")


def test_docx_headings_and_paragraph_numbers(tmp_path: Path) -> None:
    doc = make_docx(
        tmp_path / "report.docx",
        [("h1", "Report"), ("p", "Sales rose."), ("h2", "Costs"), ("p", "Costs fell.")],
    )
    kind, blocks = blocks_of(doc)
    assert kind == "docx"
    costs = next(b for b in blocks if b.text == "Costs fell.")
    assert costs.heading == ("Report", "Costs") and costs.start_line == 4


def test_malformed_docx_is_skipped(tmp_path: Path) -> None:
    doc = tmp_path / "broken.docx"
    doc.write_bytes(b"PK\x03\x04 not really a zip")
    assert skip_reason(doc).startswith("malformed DOCX")


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    binary = tmp_path / "notes.txt"
    binary.write_bytes(b"text\x00\x01\x02 with NUL")
    assert skip_reason(binary) == "binary file (contains NUL bytes)"
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    assert skip_reason(latin) == "not valid UTF-8 (bad byte at offset 3)"
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"  \n\n")
    assert skip_reason(empty) == "empty file"
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG")
    assert skip_reason(image) == "binary format (.png)"
    gone = tmp_path / "gone.md"
    assert skip_reason(gone) == "deleted while indexing"


def test_huge_file_is_skipped_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "dump.log"
    with huge.open("wb") as handle:  # sparse: 200 MB on paper, nothing on disk
        handle.truncate(200 * 1024 * 1024)
    assert skip_reason(huge) == "too large (200 MB > 50 MB limit; --max-file-mb)"


def test_discovery_skips_hidden_gitignored_and_excluded(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("build/\n*.tmp\n", encoding="utf-8")
    for name in [
        "a.md",
        ".secret.md",
        ".hidden/b.md",
        "build/c.md",
        "x.tmp",
        "docs/d.md",
        "docs/e.txt",
        "docs/sub/.gitignore",
    ]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("ignored.md\n" if name.endswith(".gitignore") else "text", "utf-8")
    (tmp_path / "docs/sub/ignored.md").write_text("text", "utf-8")
    found = discover([tmp_path])
    names = sorted(f.path.relative_to(tmp_path).as_posix() for f in found.files)
    assert names == ["a.md", "docs/d.md", "docs/e.txt"]
    assert found.ignored >= 5
    only_md = discover([tmp_path], include=["*.md"], exclude=["docs/d.md"])
    assert [f.path.name for f in only_md.files] == ["a.md"]
    everything = discover([tmp_path], include_hidden=True, respect_gitignore=False)
    assert len(everything.files) == 10


def test_symlink_loop_and_dangling_link_are_reported(tmp_path: Path) -> None:
    (tmp_path / "real.md").write_text("text", "utf-8")
    os.symlink(tmp_path, tmp_path / "loop")
    os.symlink(tmp_path / "self", tmp_path / "self")
    os.symlink(tmp_path / "missing.md", tmp_path / "dangling.md")
    found = discover([tmp_path])
    assert [f.path.name for f in found.files] == ["real.md"]
    reasons = {Path(p).name: r for p, r in found.skipped}
    assert reasons["loop"] == "symlink loop (folder already visited)"
    assert reasons["self"] == "symlink loop"
    assert reasons["dangling.md"] == "dangling symlink or deleted while indexing"


def test_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"path .*nowhere: no such file or folder"):
        discover([tmp_path / "nowhere"])

"""Files in an indexed folder that were built to make indexing slow: a ``.gitignore`` pattern
that makes a backtracking matcher take exponential time, and a DOCX of half a million empty
paragraphs (244 s through python-docx's per-paragraph style lookups). Indexing finishes
promptly, the rules keep their meaning, lines git would reject are left out with a warning,
and a DOCX whose XML unpacks past the size limit is skipped with the reason. The bounds are
generous (a shared machine), not benchmarks: the old code never finished within them. Real
``chatapp index`` / ``search`` processes, real chromadb."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from tests.security.conftest import Run, run_chatapp

PATHOLOGICAL = "*a" * 13 + "*z"  # 13 stars: the old matcher's time grows like C(40, 13)
FINISHES_WITHIN_S = 60.0


def index_json(home: Path, *args: str) -> tuple[Run, dict, float]:
    started = time.monotonic()
    run = run_chatapp(home, "index", "--embedder", "hashing", "--json", *args, timeout=180)
    elapsed = time.monotonic() - started
    assert "Traceback" not in run.err, run.err
    summary = json.loads(run.out) if run.code == 0 else {}
    return run, summary, elapsed


def names(paths: list[str]) -> set[str]:
    return {Path(p).name for p in paths}


@pytest.fixture
def ignored_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / ".gitignore").write_text(f"{PATHOLOGICAL}\n*.log\n!keep.log\n")
    (folder / ("a" * 40)).write_text("Forty letters a and no z: the rule does not match.\n")
    (folder / ("a" * 13 + "z")).write_text("Thirteen a then z: the rule matches.\n")
    (folder / "notes.md").write_text("# Notes\n\nNothing special.\n")
    (folder / "debug.log").write_text("ignored by *.log\n")
    (folder / "keep.log").write_text("kept by !keep.log\n")
    return folder


def test_a_pathological_gitignore_pattern_does_not_hang_indexing(
    chatapp_home: Path, ignored_folder: Path
) -> None:
    run, summary, elapsed = index_json(chatapp_home, "-C", "globs", str(ignored_folder))
    assert run.code == 0, run.err
    assert elapsed < FINISHES_WITHIN_S, elapsed
    assert names(summary["indexed"]) == {"a" * 40, "notes.md", "keep.log"}
    assert summary["ignored"] == 3  # the .gitignore itself, aaaaaaaaaaaaaz, debug.log
    assert summary["skipped"] == []


def test_the_same_pattern_as_an_exclude_glob_does_not_hang(
    chatapp_home: Path, ignored_folder: Path
) -> None:
    args = ["-C", "globs", "--no-gitignore", "--exclude", PATHOLOGICAL, str(ignored_folder)]
    run, summary, elapsed = index_json(chatapp_home, *args)
    assert run.code == 0, run.err
    assert elapsed < FINISHES_WITHIN_S, elapsed
    assert names(summary["indexed"]) == {"a" * 40, "notes.md", "keep.log", "debug.log"}


def test_gitignore_lines_git_would_reject_are_left_out_with_a_warning(
    chatapp_home: Path, ignored_folder: Path
) -> None:
    (ignored_folder / ".gitignore").write_text("*.log\n!\nnotes\\\n")
    run = run_chatapp(
        chatapp_home, "index", "--embedder", "hashing", "-C", "bad", str(ignored_folder)
    )
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    gitignore = ignored_folder / ".gitignore"
    assert f"{gitignore}: line 2: pattern '!' left out (not a valid pattern" in run.err, run.err
    assert f"{gitignore}: line 3: pattern 'notes\\\\' left out" in run.err, run.err
    assert "debug.log" not in run.err  # line 1 still applies: ignored, not skipped


def test_an_exclude_glob_that_is_not_a_pattern_is_one_line(
    chatapp_home: Path, ignored_folder: Path
) -> None:
    run = run_chatapp(
        chatapp_home, "index", "--embedder", "hashing", "-C", "bad", "--exclude", "!",
        str(ignored_folder),
    )  # fmt: skip
    run.assert_refused(2, "--exclude", "pattern '!'", "not a valid pattern")


EMPTY_PARAGRAPHS = 500_000


def many_paragraphs_docx(path: Path) -> Path:
    """A DOCX (python-docx's own template) whose body is 500,000 empty paragraphs and one
    with text at the end."""
    import docx

    template = io.BytesIO()
    docx.Document().save(template)
    with zipfile.ZipFile(template) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    head = parts["word/document.xml"].split(b"<w:body>")[0]
    last = b"<w:p><w:r><w:t>The last paragraph says the vault code is 4417.</w:t></w:r></w:p>"
    parts["word/document.xml"] = (
        head + b"<w:body>" + b"<w:p/>" * EMPTY_PARAGRAPHS + last + b"</w:body></w:document>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)
    return path


def test_a_docx_of_half_a_million_empty_paragraphs_is_read_promptly(
    chatapp_home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    doc = many_paragraphs_docx(folder / "empty.docx")
    assert doc.stat().st_size < 100_000
    run, summary, elapsed = index_json(chatapp_home, "-C", "word", str(folder))
    assert run.code == 0, run.err
    assert elapsed < FINISHES_WITHIN_S, elapsed
    assert names(summary["indexed"]) == {"empty.docx"}
    search = run_chatapp(chatapp_home, "search", "-C", "word", "vault code", "--json")
    assert search.code == 0, search.err
    [hit] = [h for h in json.loads(search.out) if "4417" in h["text"]]
    assert hit["start_line"] == EMPTY_PARAGRAPHS + 1  # numbered as python-docx numbered them


def test_a_docx_that_unpacks_past_the_size_limit_is_skipped_with_the_reason(
    chatapp_home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    many_paragraphs_docx(folder / "empty.docx")  # ~60 KB on disk, 3 MB of XML unpacked
    (folder / "notes.md").write_text("# Notes\n\nA small file beside it.\n")
    run, summary, elapsed = index_json(
        chatapp_home, "-C", "word", "--max-file-mb", "1", str(folder)
    )
    assert run.code == 0, run.err
    assert elapsed < FINISHES_WITHIN_S, elapsed
    assert names(summary["indexed"]) == {"notes.md"}
    [skipped] = summary["skipped"]
    assert skipped["path"] == str(folder / "empty.docx")
    assert skipped["reason"].startswith("too large unpacked (word/document.xml is 3 MB of XML")
    assert "--max-file-mb" in skipped["reason"]

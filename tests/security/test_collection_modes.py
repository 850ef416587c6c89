"""A document collection is as private as the conversations: every folder chatapp makes under
``collections/`` (the chroma store, each collection's manifest folder, its BM25 index) is 0700
and every file in them 0600, right after ``chatapp index`` made them and after a store an older
version left 0755/0644 is used again. Real ``chatapp`` processes, real chromadb and bm25s."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.security.conftest import run_chatapp


def too_open(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) that group or others can get at."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            info = os.lstat(name)
            wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            if stat.S_IMODE(info.st_mode) != wanted:
                found.append(f"{oct(stat.S_IMODE(info.st_mode))} {name}")
    return sorted(set(found))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "keys.md").write_text("# Keys\n\nThe deploy key rotates every month.\n")
    (folder / "plan.md").write_text("# Plan\n\nShip the release on Friday.\n")
    return folder


def test_a_new_collection_is_private(chatapp_home: Path, docs: Path) -> None:
    run = run_chatapp(chatapp_home, "index", "-C", "notes", "--embedder", "hashing", str(docs))
    assert run.code == 0, run.err
    collections = chatapp_home / "data" / "collections"
    assert (collections / "chroma").is_dir() and (
        collections / "manifests" / "notes" / "bm25"
    ).is_dir()
    assert too_open(collections) == []


def test_a_collection_left_readable_is_tightened_on_next_use(
    chatapp_home: Path, docs: Path
) -> None:
    run = run_chatapp(chatapp_home, "index", "-C", "notes", "--embedder", "hashing", str(docs))
    assert run.code == 0, run.err
    collections = chatapp_home / "data" / "collections"
    for folder, _dirs, files in os.walk(collections):  # what an older version left
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    search = run_chatapp(chatapp_home, "search", "-C", "notes", "deploy key", "--json")
    assert search.code == 0, search.err
    assert "keys.md" in search.out
    assert too_open(collections) == []
    # and what the next run writes (a changed file, a new BM25 index) is private as well
    (docs / "plan.md").write_text("# Plan\n\nShip the release on Monday.\n")
    run = run_chatapp(chatapp_home, "index", "-C", "notes", str(docs))
    assert run.code == 0, run.err
    assert too_open(collections) == []

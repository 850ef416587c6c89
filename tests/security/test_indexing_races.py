"""A folder can change between the scan that checks its files and the read that indexes them:
a checked file swapped for a symlink to a private key, or for a FIFO, or its folder swapped for
a link to another folder. The read must open the very file the scan checked (a regular file,
reached without following links it did not approve, the same device and inode) and must never
block; a swapped file is skipped with the reason and the secret reaches neither the store nor
``search``. The race is made deterministic by swapping between the two phases of the public
indexing API (``discover``, then ``Indexer.run_discovered``) or before ``read_file`` of a scanned
file. Real files, FIFOs and symlinks, real chromadb, a real ``chatapp search`` process."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chatapp.embedding.embedder import HashingEmbedder
from chatapp.retrieval.ingest.discovery import FoundFile, discover
from chatapp.retrieval.ingest.indexing import Indexer, IndexOptions
from chatapp.retrieval.ingest.loaders import SkipFile, read_file
from chatapp.retrieval.store.collection import create_or_open, open_collection
from tests.security.conftest import run_chatapp

SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- zebrasecretkeymaterial"
SECRET_WORD = "zebrasecretkeymaterial"


def finishes(work: Callable[[], Any], seconds: float = 60) -> Any:
    """``work()``'s result, failing (not hanging) when it blocks longer than ``seconds``."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def body() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # handed to the test below
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if errors:
        raise errors[0]
    return out[0]


@pytest.fixture
def private(tmp_path: Path) -> Path:
    """A private folder outside the indexed one (``~/.ssh``)."""
    folder = tmp_path / "home" / ".ssh"
    folder.mkdir(parents=True)
    (folder / "id_rsa").write_text(SECRET + "\n")
    (folder / "notes.md").write_text(f"# Keys\n\n{SECRET}\n")
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "keys").mkdir(parents=True)
    (folder / "docs").mkdir()
    (folder / "notes.md").write_text("# Notes\n\nThe build runs every night.\n")
    (folder / "plan.md").write_text("# Plan\n\nShip the release on Friday.\n")
    (folder / "keys" / "id_rsa").write_text("placeholder: no key is kept here\n")
    (folder / "docs" / "readme.md").write_text("# Readme\n\nHow to build the project.\n")
    (folder / "readme-link.md").symlink_to(folder / "docs" / "readme.md")  # inside: followed
    return folder


def scanned(root: Path, **options: Any) -> dict[str, FoundFile]:
    return {f.path.relative_to(root).as_posix(): f for f in discover([root], **options).files}


def skip_reason(found: FoundFile) -> str:
    with pytest.raises(SkipFile) as refused:
        finishes(lambda: read_file(found))
    return refused.value.reason


def test_a_file_swapped_for_a_symlink_after_the_scan_is_not_read(
    project: Path, private: Path
) -> None:
    found = scanned(project)["notes.md"]
    (project / "notes.md").unlink()
    (project / "notes.md").symlink_to(private / "notes.md")
    reason = skip_reason(found)
    assert "symlink" in reason and "while indexing" in reason, reason


def test_a_file_swapped_for_a_fifo_after_the_scan_does_not_block(project: Path) -> None:
    found = scanned(project)["plan.md"]
    (project / "plan.md").unlink()
    os.mkfifo(project / "plan.md")  # nobody ever writes to it: a plain open() blocks for good
    assert "not a regular file" in skip_reason(found)


def test_a_folder_swapped_for_a_link_after_the_scan_is_not_followed(
    project: Path, private: Path
) -> None:
    found = scanned(project)["keys/id_rsa"]
    (project / "keys").rename(project / "keys-old")
    (project / "keys").symlink_to(private)  # keys/id_rsa is now ~/.ssh/id_rsa
    reason = skip_reason(found)
    assert "symlink" in reason and "while indexing" in reason, reason


def test_a_file_replaced_by_another_after_the_scan_is_not_read(
    project: Path, tmp_path: Path
) -> None:
    found = scanned(project)["notes.md"]
    other = tmp_path / "other.md"
    other.write_text(f"# Other\n\n{SECRET}\n")
    os.replace(other, project / "notes.md")  # another inode now has the scanned name
    assert "replaced by another file while indexing" in skip_reason(found)


def test_files_and_links_the_scan_approved_are_read(project: Path, private: Path) -> None:
    """Positive controls: a plain file, a link inside the folder, and (asked for) a link out."""
    files = scanned(project)
    assert read_file(files["notes.md"])[0].startswith(b"# Notes")
    assert read_file(files["readme-link.md"])[0].startswith(b"# Readme")
    (project / "key.md").symlink_to(private / "notes.md")
    followed = scanned(project, follow_symlinks=True)["key.md"]
    assert SECRET_WORD.encode() in read_file(followed)[0]


@pytest.mark.parametrize("reader_process", [False, True], ids=["reader-thread", "reader-process"])
def test_swaps_between_scan_and_read_never_reach_the_store_or_search(
    chatapp_home: Path, project: Path, private: Path, reader_process: bool
) -> None:
    found = discover([project])
    assert {f.path.name for f in found.files} >= {"notes.md", "plan.md", "id_rsa"}
    # Between the scan and the read: a link to a private file, a FIFO, a folder swapped.
    (project / "notes.md").unlink()
    (project / "notes.md").symlink_to(private / "notes.md")
    (project / "plan.md").unlink()
    os.mkfifo(project / "plan.md")
    (project / "keys").rename(project / "keys-old")
    (project / "keys").symlink_to(private)
    collection = create_or_open("race", embedder="hashing", chunk_tokens=60, chunk_overlap=8)
    try:
        options = IndexOptions(reader_process=reader_process)
        indexer = Indexer(collection, HashingEmbedder, options)
        summary = finishes(lambda: indexer.run_discovered(found), seconds=120)
    finally:
        collection.close()
    reasons = dict(summary.skipped)
    assert "symlink" in reasons[str(project / "notes.md")], reasons
    assert "not a regular file" in reasons[str(project / "plan.md")], reasons
    assert "symlink" in reasons[str(project / "keys" / "id_rsa")], reasons
    assert str(project / "docs" / "readme.md") in summary.indexed
    with open_collection("race") as stored:
        assert not any(SECRET_WORD in c.text for c in stored.manifest.all_chunks())
    search = run_chatapp(chatapp_home, "search", "-C", "race", SECRET_WORD, "--json")
    assert search.code == 0, search.err
    assert SECRET_WORD not in search.out and "BEGIN OPENSSH" not in search.out


def test_a_gitignore_that_is_a_fifo_or_a_device_does_not_block_the_scan(
    chatapp_home: Path, project: Path
) -> None:
    os.mkfifo(project / ".gitignore")
    (project / "docs" / ".gitignore").symlink_to("/dev/zero")  # endless: read to the end, never
    run = finishes(
        lambda: run_chatapp(
            chatapp_home, "index", "-C", "fifo", "--embedder", "hashing", str(project)
        ),
        seconds=150,
    )
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    assert f"{project / '.gitignore'}: not a regular file" in run.err, run.err
    assert f"{project / 'docs' / '.gitignore'}: not a regular file" in run.err, run.err
    assert "5 indexed" in run.err, run.err  # every file; the rules were left out


def test_files_flipping_while_chatapp_index_runs_never_leak_or_block(
    chatapp_home: Path, tmp_path: Path, private: Path
) -> None:
    """The live race: a real ``chatapp index`` of a folder large enough for its reader process
    while a thread keeps turning some of its files into links to the private key and into
    FIFOs and back. Whatever the timing, the run ends and the secret is never stored."""
    folder = tmp_path / "big"
    folder.mkdir()
    body = "Routine notes about the weekly build and its logs. " * 40
    for n in range(160):
        (folder / f"note-{n:03}.md").write_text(f"# Note {n}\n\n{body}\n")
    flipping = [folder / f"note-{n:03}.md" for n in range(0, 160, 8)]
    done = threading.Event()

    def flip() -> None:
        turn = 0
        while not done.is_set():
            for offset, path in enumerate(flipping):  # at any moment, some of each kind
                tmp = path.with_suffix(".tmp")
                state = (turn + offset) % 3
                with contextlib.suppress(OSError):
                    if state == 0:
                        tmp.symlink_to(private / "notes.md")
                    elif state == 1:
                        os.mkfifo(tmp)
                    else:
                        tmp.write_text("# Back\n\nA plain file again.\n")
                    os.replace(tmp, path)
            turn += 1

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        run = run_chatapp(
            chatapp_home, "index", "-C", "live", "--embedder", "hashing", str(folder), timeout=150
        )
    finally:
        done.set()
        flipper.join(10)
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    with open_collection("live") as stored:
        assert not any(SECRET_WORD in c.text for c in stored.manifest.all_chunks())
        assert len(stored.manifest.files()) >= 140  # the files nobody touched
    search = run_chatapp(chatapp_home, "search", "-C", "live", SECRET_WORD, "--json")
    assert search.code == 0, search.err
    assert SECRET_WORD not in search.out

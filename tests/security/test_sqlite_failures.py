"""A write that fails — the disk is full, a COMMIT is refused — loses nothing saved before it
and leaves the shared connection ready for the next write. Real SQLite: a real small tmpfs
where one can be mounted (root), SQLite's own page limit, and a COMMIT that SQLite refuses
while keeping the transaction open (a deferred foreign key)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.errors import StoreError
from chatapp.sqlite_connection import SharedConnection


def test_a_refused_commit_leaves_the_connection_usable(tmp_path: Path) -> None:
    conn = SharedConnection(tmp_path / "fk.db")
    conn.db.executescript(
        "CREATE TABLE parent(id INTEGER PRIMARY KEY);"
        "CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER "
        "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);"
    )
    with conn.transaction() as db:
        db.execute("INSERT INTO parent(id) VALUES (1)")
        db.execute("INSERT INTO child(parent_id) VALUES (1)")
    with pytest.raises(Exception, match="FOREIGN KEY constraint failed"), conn.transaction() as db:
        db.execute("INSERT INTO child(parent_id) VALUES (99)")  # refused only at COMMIT
    assert not conn.db.in_transaction
    with conn.transaction() as db:  # the next write works
        db.execute("INSERT INTO child(parent_id) VALUES (1)")
    assert conn.query("SELECT parent_id FROM child ORDER BY id") == [(1,), (1,)]
    conn.close()


def test_database_full_is_one_clear_error_and_nothing_is_lost(tmp_path: Path) -> None:
    conn = SharedConnection(tmp_path / "full.db")
    conn.db.execute("CREATE TABLE notes(text TEXT)")
    with conn.transaction() as db:
        db.execute("INSERT INTO notes VALUES ('kept')")
    pages = conn.query("PRAGMA page_count")[0][0]
    conn.db.execute(f"PRAGMA max_page_count = {pages + 2}")
    refused = r"full\.db: the disk is full; this change was not saved"
    with pytest.raises(StoreError, match=refused), conn.transaction() as db:
        db.executemany("INSERT INTO notes VALUES (?)", [("x" * 4000,)] * 50)
    assert not conn.db.in_transaction
    assert conn.query("SELECT text FROM notes") == [("kept",)]
    conn.db.execute("PRAGMA max_page_count = 1073741823")
    with conn.transaction() as db:
        db.execute("INSERT INTO notes VALUES ('after')")
    assert conn.query("SELECT text FROM notes") == [("kept",), ("after",)]
    conn.close()


def test_secure_delete_is_on(tmp_path: Path) -> None:
    conn = SharedConnection(tmp_path / "s.db")
    assert conn.query("PRAGMA secure_delete") == [(1,)]
    conn.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs, where the machine lets us mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_at_commit_keeps_the_history_and_the_store_usable(small_disk: Path) -> None:
    from chatapp.storage import ConversationStore

    store = ConversationStore(small_disk / "chatapp.db")
    conversation = store.create_conversation(title="before")
    first = store.add_message(conversation.id, "user", "saved before the disk filled")
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler = small_disk / "filler"
    with open(filler, "wb") as out, contextlib.suppress(OSError):
        out.write(b"\0" * max(0, free - 16_384))
    with pytest.raises(StoreError, match="the disk is full"):
        store.add_message(conversation.id, "assistant", "y" * 200_000, parent_id=first.id)
    filler.unlink()
    later = store.add_message(conversation.id, "assistant", "saved after", parent_id=first.id)
    assert [m.content for m in store.thread(conversation.id, later.id)] == [
        "saved before the disk filled",
        "saved after",
    ]
    store.close()
    with ConversationStore(small_disk / "chatapp.db") as again:  # and on disk, too
        assert len(again.messages(conversation.id)) == 2

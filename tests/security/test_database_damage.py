"""Damage inside the history database: a real page of a real database file overwritten (found
with ``dbstat``), then the real CLI. Every command that meets the damage says in one line what
is damaged and how to recover (exit 2, no traceback, never "move it aside"); a failed ``ask``
leaves no empty conversation; ``chatapp doctor --repair`` gets back everything readable."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from tests.security.conftest import run_chatapp, stored_state

FILLER = "lorem ipsum dolor sit amet " * 40  # ~1 KB a message: many pages of messages


@pytest.fixture
def filled(home: Path) -> Path:
    """The suite's home with six more conversations of long messages."""
    for i in range(6):
        run = run_chatapp(home, "ask", f"question {i} about zebras {FILLER}")
        assert run.code == 0, run.err
    return home


def database(home: Path) -> Path:
    return home / "data" / "chatapp.db"


def overwrite_page(db: Path, table: str) -> int:
    """Overwrite the leftmost leaf page of ``table`` (its first rows) with junk; its number."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        page = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path LIMIT 1",
            (table,),
        ).fetchone()[0]
    conn.close()
    with db.open("r+b") as out:
        out.seek((page - 1) * size)
        out.write(b"\xa5" * size)
    return page


def conversation_ids(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM conversations ORDER BY id")]
    conn.close()
    return ids


def refused_as_damaged(home: Path, *args: str, what: str) -> None:
    run = run_chatapp(home, *args)
    run.assert_refused(2, str(database(home)), what, "chatapp doctor --repair")
    assert "move it aside" not in run.err


def test_a_damaged_search_index_is_one_line_and_doctor_repair_rebuilds_it(filled: Path) -> None:
    home = filled
    before = stored_state(home)
    overwrite_page(database(home), "messages_fts_data")
    ids = conversation_ids(database(home))

    refused_as_damaged(home, "history", "search", "zebras", what="search index is damaged")
    refused_as_damaged(home, "ask", "a new question", what="search index is damaged")
    assert conversation_ids(database(home)) == ids  # the failed ask left no empty conversation
    refused_as_damaged(home, "history", "rm", "2", what="search index is damaged")
    assert run_chatapp(home, "history", "show", "2").code == 0  # messages still read

    repair = run_chatapp(home, "doctor", "--repair")
    assert repair.code == 0, repair.err
    assert "search index rebuilt" in repair.out
    assert stored_state(home) == before  # every conversation and message, unchanged
    found = run_chatapp(home, "history", "search", "zebras")
    assert found.code == 0 and "question 3 about" in found.out, found.err
    [kept] = list((home / "data").glob("chatapp.db.damaged-*"))
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert run_chatapp(home, "ask", "works again").code == 0


def test_a_damaged_messages_page_is_one_line_and_doctor_repair_keeps_what_reads(
    filled: Path,
) -> None:
    home = filled
    with sqlite3.connect(database(home)) as conn:
        messages_before = {
            r[0]: r[1:] for r in conn.execute("SELECT id, conversation_id, content FROM messages")
        }
    conn.close()
    overwrite_page(database(home), "messages")

    # The first conversation's rows were on that page.
    refused_as_damaged(home, "history", "show", "1", what="damaged (messages)")
    refused_as_damaged(home, "history", "export", "1", what="damaged (messages)")
    refused_as_damaged(home, "history", "rm", "1", what="damaged (messages)")
    listed = run_chatapp(home, "history", "list")  # the conversations table is intact
    assert listed.code == 0, listed.err

    repair = run_chatapp(home, "doctor", "--repair")
    assert repair.code == 0, repair.err
    assert "could not be read" in repair.out and "kept as" in repair.out
    with sqlite3.connect(database(home)) as conn:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        after = {
            r[0]: r[1:] for r in conn.execute("SELECT id, conversation_id, content FROM messages")
        }
    conn.close()
    lost = set(messages_before) - set(after)
    assert lost and min(lost) == 1  # the damaged page's rows, the first ones
    assert all(after[i] == messages_before[i] for i in after)  # the rest exactly as they were
    assert len(after) >= len(messages_before) - len(lost)
    for conversation in conversation_ids(database(home)):
        shown = run_chatapp(home, "history", "show", str(conversation))
        assert shown.code == 0, shown.err
    found = run_chatapp(home, "history", "search", "zebras")
    assert found.code == 0 and "question 5 about" in found.out, found.err


def test_doctor_reports_a_damaged_database(filled: Path) -> None:
    overwrite_page(database(filled), "messages_fts_data")
    run = run_chatapp(filled, "doctor")
    assert run.code == 0, run.err
    assert "search index is damaged" in run.out and "doctor --repair" in run.out

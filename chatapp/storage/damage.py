"""A damaged conversation database: saying what is damaged, and getting back what is readable.

Damage is pages inside the file overwritten or lost (a disk fault, a bad copy, another program):
SQLite reports it as "database disk image is malformed" (or, for the search index, "vtable
constructor failed") on the first query that reads such a page. The connection then checks
each table once (chatapp.sqlite_connection.find_damage) and the user gets one line naming what
is damaged and what to do: a damaged search index loses nothing and is rebuilt; damaged
messages or conversations are copied out, row by row, into a fresh database by
``chatapp doctor --repair`` (``repair_database``), which keeps the damaged file beside it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chatapp.errors import ChatappError, StoreError
from chatapp.paths import (
    create_private_file,
    make_private,
    not_writable,
    unwritable_reason,
    write_failure,
)
from chatapp.sqlite_connection import SIDE_FILES, find_damage, is_damage, open_read_only
from chatapp.storage.migrations import migrate

SEARCH_INDEX = "messages_fts"
REPAIR = "`chatapp doctor --repair`"


def _is_search_index(part: str) -> bool:
    return part == SEARCH_INDEX or part.startswith(SEARCH_INDEX + "_")


def describe(parts: list[str]) -> str:
    """The damaged parts in the user's words."""
    words: list[str] = []
    for part in parts:
        word = {
            "schema": "the list of tables",
            "file": "pages outside any table",
            "messages": "messages",
            "conversations": "conversations",
        }.get(part, "the search index" if _is_search_index(part) else part)
        if word not in words:
            words.append(word)
    return ", ".join(words)


def damage_hint(parts: list[str]) -> str:
    """What is damaged and how to recover, for the one-line error."""
    if parts and all(_is_search_index(p) for p in parts):
        return f"its search index is damaged (no conversation is lost); run {REPAIR} to rebuild it"
    return (
        f"damaged ({describe(parts)}); run {REPAIR} to keep every conversation and message "
        "still readable (the damaged file is kept beside it), or `chatapp history export ID` "
        "to save one that still opens"
    )


def open_failure(path: Path, exc: sqlite3.DatabaseError, read_only: bool) -> ChatappError:
    """The one-line error for a database that cannot be opened."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    reason = unwritable_reason(path.parent, after_failure=True)
    if code in (8, 14) and (read_only or reason):  # READONLY, CANTOPEN
        return not_writable(path.parent, reason or str(exc), reading_works=path.exists())
    if code in (10, 13) and (reason or code == 13):  # IOERR, FULL: a full disk
        return not_writable(path.parent, reason or "no space left on the device")
    if code == 11:  # CORRUPT while opening: the schema or the migrations' own table
        with contextlib.suppress(sqlite3.Error):
            db = open_read_only(path)
            try:
                return StoreError(f"database {path}: {damage_hint(find_damage(db))}")
            finally:
                db.close()
        return StoreError(f"database {path}: {damage_hint(['schema'])}")
    # Not a database at all (or a foreign one): nothing chatapp could read back from it.
    return StoreError(
        f"database {path}: cannot be opened ({exc}); it was left as it is — "
        "move it aside to start a fresh history"
    )


@dataclass
class RepairReport:
    """What ``repair_database`` did."""

    damaged: list[str]
    conversations: int = 0
    messages: int = 0
    lost_messages: int = 0
    lost_conversations: int = 0
    kept_as: Path | None = None

    def summary(self) -> str:
        if not self.damaged:
            return "nothing to repair: every table checks out"
        lost = ""
        if self.lost_messages or self.lost_conversations:
            lost = (
                f"; {self.lost_messages} message(s) and {self.lost_conversations} conversation"
                "(s) were on damaged pages and could not be read"
            )
        kept = f"; the damaged file is kept as {self.kept_as}" if self.kept_as else ""
        return (
            f"repaired ({describe(self.damaged)} damaged): {self.conversations} conversation(s) "
            f"and {self.messages} message(s) kept, search index rebuilt{lost}{kept}"
        )


def repair_database(path: Path) -> RepairReport:
    """Check the database at ``path``; when damaged, copy every readable conversation and
    message into a fresh database (the search index is made anew from the messages), then put
    it in the damaged file's place, which is kept beside it as ``<name>.damaged-<time>``.
    Close other chatapp windows first: they would go on writing the old file."""
    if not path.exists():
        return RepairReport([])
    reason = unwritable_reason(path.parent)
    if reason:
        raise not_writable(path.parent, reason, reading_works=True)
    old = sqlite3.connect(path, isolation_level=None)
    try:
        damaged = find_damage(old)
        if not damaged:
            with contextlib.suppress(sqlite3.DatabaseError):
                old.execute(f"INSERT INTO {SEARCH_INDEX}({SEARCH_INDEX}) VALUES('integrity-check')")
                return RepairReport([])
            damaged = [SEARCH_INDEX]
        report = RepairReport(damaged)
        fresh = path.with_name(path.name + ".repairing")
        for leftover in [fresh, *(fresh.with_name(fresh.name + s) for s in SIDE_FILES)]:
            leftover.unlink(missing_ok=True)
        try:
            _copy_readable(old, fresh, report)
        except BaseException:
            fresh.unlink(missing_ok=True)
            raise
    finally:
        old.close()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    try:
        os.replace(path, kept)
        for suffix in SIDE_FILES:
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, kept.with_name(kept.name + suffix))
        os.replace(fresh, path)
    except OSError as exc:
        if write_failure(exc):
            raise not_writable(path.parent, exc) from None
        raise
    make_private(kept)
    report.kept_as = kept
    return report


def _readable_rows(old: sqlite3.Connection, table: str) -> tuple[list[sqlite3.Row], int]:
    """Every row of ``table`` that can be read: all at once, else one id at a time (a damaged
    page loses the rows on it, not the table). Returns (rows, rows lost)."""
    old.row_factory = sqlite3.Row
    try:
        return old.execute(f"SELECT * FROM {table} ORDER BY id").fetchall(), 0
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
    highest = 0
    for sql in (
        "SELECT seq FROM sqlite_sequence WHERE name = ?",
        f"SELECT max(id) FROM {table} WHERE ? IS NOT NULL",
    ):
        with contextlib.suppress(sqlite3.DatabaseError, TypeError):
            highest = max(highest, int(old.execute(sql, (table,)).fetchone()[0] or 0))
    rows, lost = [], 0
    for row_id in range(1, highest + 1):
        try:
            found = old.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchall()
        except sqlite3.DatabaseError:
            lost += 1
            continue
        rows.extend(found)
    return rows, lost


def _copy_readable(old: sqlite3.Connection, fresh_path: Path, report: RepairReport) -> None:
    conversations, report.lost_conversations = _readable_rows(old, "conversations")
    messages, report.lost_messages = _readable_rows(old, "messages")
    create_private_file(fresh_path)
    new = sqlite3.connect(fresh_path, isolation_level=None)
    try:
        new.execute("PRAGMA journal_mode = WAL")
        migrate(new)  # the schema, the search index and its triggers
        new.execute("PRAGMA foreign_keys = OFF")  # parents lost on a damaged page
        new.execute("BEGIN IMMEDIATE")
        columns = {r[1] for r in new.execute("PRAGMA table_info(messages)")}
        known = {r["id"] for r in conversations}
        for row in conversations:
            _insert(new, "conversations", dict(row))
        for row in messages:
            data = {k: v for k, v in zip(row.keys(), tuple(row), strict=True) if k in columns}
            if data["conversation_id"] not in known:  # its conversation row was lost
                _insert(new, "conversations", _stand_in(data))
                known.add(data["conversation_id"])
            _insert(new, "messages", data)
        # A reply whose parent was lost starts its own branch; a lost active leaf: the newest.
        new.execute(
            "UPDATE messages SET parent_id = NULL WHERE parent_id IS NOT NULL"
            " AND parent_id NOT IN (SELECT id FROM messages)"
        )
        new.execute(
            "UPDATE conversations SET active_leaf_id = (SELECT max(id) FROM messages m"
            " WHERE m.conversation_id = conversations.id) WHERE active_leaf_id IS NULL"
            " OR active_leaf_id NOT IN (SELECT id FROM messages)"
        )
        for table in ("conversations", "messages"):  # ids of lost rows are never given again
            with contextlib.suppress(sqlite3.DatabaseError, TypeError):
                seq = old.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
                ).fetchone()
                new.execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq[0], table)
                )
        new.execute("COMMIT")
        report.conversations = new.execute("SELECT count(*) FROM conversations").fetchone()[0]
        report.messages = new.execute("SELECT count(*) FROM messages").fetchone()[0]
        new.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        new.close()


def _stand_in(message: dict[str, object]) -> dict[str, object]:
    when = message.get("created_at") or datetime.now(UTC).isoformat()
    return {
        "id": message["conversation_id"],
        "title": "(recovered conversation)",
        "created_at": when,
        "updated_at": when,
    }


def _insert(db: sqlite3.Connection, table: str, row: dict[str, object]) -> None:
    names = ", ".join(row)
    marks = ", ".join("?" * len(row))
    db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))

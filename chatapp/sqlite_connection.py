"""One SQLite connection shared by a process's threads.

WAL and a busy timeout let two chatapp processes write the same file; a lock serialises the
threads of one process (UI workers, the index watcher) so their transactions never interleave;
writes take the lock and an IMMEDIATE transaction, so they are all-or-nothing. Used by the
conversation store and by each document collection's manifest.

Private and forgetful: the database file is created 0600 (SQLite gives its ``-wal`` and
``-shm`` files the database's mode) and ``secure_delete`` overwrites deleted rows, so a deleted
conversation does not stay readable in free pages. A COMMIT that fails (disk full, I/O error)
is rolled back, so the connection is ready for the next write instead of stuck inside a
transaction that no later write can finish.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatapp.errors import StoreError
from chatapp.paths import create_private_file, make_private

SIDE_FILES = ("-wal", "-shm", "-journal")


class SharedConnection:
    """Opens ``path`` (or ``":memory:"``); raises sqlite3.DatabaseError for a file that is not
    a database, which callers turn into their own one-line error."""

    def __init__(
        self, path: Path | str, *, busy_timeout_s: float = 15.0, rows_as_dicts: bool = False
    ) -> None:
        self.path = str(path)
        self.lock = threading.RLock()
        if self.path != ":memory:" and not self.path.startswith("file:"):
            _private_database(Path(self.path))
        self.db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        if rows_as_dicts:
            self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA secure_delete = ON")
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing writes: committed when the block ends, rolled back if it raises or
        the COMMIT fails. A full disk or an I/O error becomes a StoreError naming the file."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException as exc:
                # SQLite may or may not have rolled back already (it depends on the error).
                self._rollback()
                if isinstance(exc, sqlite3.Error) and _is_storage_failure(exc):
                    raise StoreError(
                        f"database {self.path}: {_storage_failure_text(exc)}; this change was "
                        "not saved and everything saved before it is intact"
                    ) from exc
                raise

    def _rollback(self) -> None:
        if self.db.in_transaction:
            # SQLite may have rolled back meanwhile: then nothing is left to undo.
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    def purge_deleted(self) -> None:
        """Make deleted rows unrecoverable: full-text indexes drop the words of deleted rows
        (FTS5 keeps them until its segments merge), then the WAL, which still holds the pages
        as they were before the delete, is copied back and emptied. ``secure_delete`` has
        already zeroed the freed space. Costs a rewrite of the search index: call it after
        deleting something private (a conversation), not after every write."""
        with self.lock:
            tables = [
                row[0]
                for row in self.db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%'"
                )
            ]
            if tables:
                with self.transaction() as db:
                    for table in tables:
                        db.execute(f'INSERT INTO "{table}"("{table}") VALUES (\'optimize\')')
            if self.path != ":memory:":
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self.lock:
            self.db.close()


def purge_deleted(path: Path | str) -> None:
    """``SharedConnection.purge_deleted`` on the database at ``path`` (a short connection)."""
    connection = SharedConnection(path)
    try:
        connection.purge_deleted()
    finally:
        connection.close()


_SQLITE_IOERR, _SQLITE_FULL = 10, 13


def _is_storage_failure(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in (_SQLITE_IOERR, _SQLITE_FULL)


def _storage_failure_text(exc: sqlite3.Error) -> str:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return "the disk is full" if code == _SQLITE_FULL else f"disk I/O error ({exc})"


def _private_database(path: Path) -> None:
    """The database and its side files readable by their owner only (created so if new)."""
    if not path.parent.is_dir():
        return  # sqlite3 reports the missing folder itself
    create_private_file(path)
    for suffix in SIDE_FILES:
        make_private(path.with_name(path.name + suffix))

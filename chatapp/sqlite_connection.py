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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatapp.errors import DatabaseDamagedError, StoreError
from chatapp.paths import create_private_file, make_private, not_writable, unwritable_reason

SIDE_FILES = ("-wal", "-shm", "-journal")


class SharedConnection:
    """Opens ``path`` (or ``":memory:"``); raises sqlite3.DatabaseError for a file that is not
    a database, which callers turn into their own one-line error.

    ``read_only`` opens an existing file for reading alone (a read-only mount or folder): the
    WAL is read when SQLite can share it, else the file as it is (``immutable``). A write then
    is a NotWritableError naming the folder. A query that meets damaged pages is a
    DatabaseDamagedError naming what is damaged (found once, by ``PRAGMA quick_check`` of
    each table); ``damage_hint(parts)`` words it and says how to recover."""

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 15.0,
        rows_as_dicts: bool = False,
        read_only: bool = False,
        damage_hint: Callable[[list[str]], str] | None = None,
    ) -> None:
        self.path = str(path)
        self.lock = threading.RLock()
        if not read_only and self.path != ":memory:" and not self.path.startswith("file:"):
            # An existing file in a folder that cannot be written (a read-only mount): read it.
            folder = Path(self.path).parent
            read_only = Path(self.path).is_file() and unwritable_reason(folder) is not None
        self.read_only = bool(read_only)
        self._damage_hint = damage_hint
        self._damaged: list[str] | None = None
        self._depth = 0  # transactions open on this connection (nested ones join the first)
        if self.read_only:
            self.db = open_read_only(Path(self.path), busy_timeout_s)
        else:
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
        if self.path != ":memory:" and not self.read_only:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self.lock:
            try:
                return self.db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                self._raise_plainly(exc)
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing writes: committed when the block ends, rolled back if it raises or
        the COMMIT fails. A full disk or an I/O error becomes a StoreError naming the file.
        A transaction opened inside another (same thread) is part of it: all commit together."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                self._raise_plainly(exc)
                raise
            self._depth = 1
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
                if isinstance(exc, sqlite3.DatabaseError):
                    self._raise_plainly(exc)
                raise
            finally:
                self._depth = 0

    def _raise_plainly(self, exc: sqlite3.DatabaseError) -> None:
        """Damage and a read-only file as the one-line errors they are (others: unchanged)."""
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code == _SQLITE_READONLY or (self.read_only and code == _SQLITE_CANTOPEN):
            folder = Path(self.path).parent
            reason = unwritable_reason(folder, after_failure=True) or "read-only database"
            raise not_writable(folder, reason, reading_works=True) from None
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            parts = self.damaged_parts()
            what = (
                self._damage_hint(parts)
                if self._damage_hint
                else f"damaged ({', '.join(parts)}) — restore it from a backup"
            )
            raise DatabaseDamagedError(f"database {self.path}: {what}", parts) from None

    def damaged_parts(self) -> list[str]:
        """The tables whose pages are damaged (each table's own ``PRAGMA quick_check``, its
        indexes included), found once per connection; ``["schema"]`` when even the list of
        tables cannot be read."""
        if self._damaged is None:
            self._damaged = find_damage(self.db)
        return self._damaged

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


_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26
_SQLITE_READONLY = 8


def is_damage(exc: BaseException) -> bool:
    """Whether a sqlite3 error says the file's pages are damaged."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return isinstance(exc, sqlite3.DatabaseError) and code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def find_damage(db: sqlite3.Connection) -> list[str]:
    """Names of the tables whose pages are damaged (``PRAGMA quick_check`` of each, its
    indexes included); ``["schema"]`` when even the list of tables cannot be read, ``["file"]``
    when every table checks out but the whole file does not."""
    try:
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0"
            ).fetchall()
        ]
    except sqlite3.DatabaseError:
        return ["schema"]
    damaged = []
    for name in names:
        try:
            rows = db.execute(f"PRAGMA quick_check('{name}')").fetchall()  # names from the file
            if [tuple(r) for r in rows] != [("ok",)]:
                damaged.append(name)
        except sqlite3.DatabaseError:
            damaged.append(name)
    if not damaged:
        try:
            if [tuple(r) for r in db.execute("PRAGMA quick_check").fetchall()] != [("ok",)]:
                damaged.append("file")
        except sqlite3.DatabaseError:
            damaged.append("file")
    return damaged


def open_read_only(path: Path, busy_timeout_s: float = 15.0) -> sqlite3.Connection:
    """An existing database opened for reading only: through its WAL when SQLite can share
    it (its -shm file exists or can be made), else as the file stands (``immutable``; a
    cleanly closed database has no WAL left to miss)."""
    from urllib.parse import quote

    base = f"file:{quote(str(path))}?mode=ro"
    for uri in (base, base + "&immutable=1"):
        db = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in (_SQLITE_CANTOPEN, _SQLITE_IOERR, _SQLITE_READONLY):
                raise  # otherwise its -shm cannot be made (a read-only or full folder)
    raise sqlite3.OperationalError(f"unable to open database file {path}")


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

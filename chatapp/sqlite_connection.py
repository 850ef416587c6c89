"""One SQLite connection shared by a process's threads.

WAL and a busy timeout let two chatapp processes write the same file; a lock serialises the
threads of one process (UI workers, the index watcher) so their transactions never interleave;
writes take the lock and an IMMEDIATE transaction, so they are all-or-nothing. Used by the
conversation store and by each document collection's manifest.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class SharedConnection:
    """Opens ``path`` (or ``":memory:"``); raises sqlite3.DatabaseError for a file that is not
    a database, which callers turn into their own one-line error."""

    def __init__(
        self, path: Path | str, *, busy_timeout_s: float = 15.0, rows_as_dicts: bool = False
    ) -> None:
        self.path = str(path)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        if rows_as_dicts:
            self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self.db.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing writes: committed when the block ends, rolled back if it raises."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.db.close()

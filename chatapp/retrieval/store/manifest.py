"""A collection's manifest: which files are indexed (size, mtime, content hash) and their chunks.

One SQLite file per collection (WAL). It is the source of truth for what a collection holds: the
vector store may briefly hold extra vectors (a run interrupted between writing new vectors and
recording them), which are listed in ``pending`` first and removed by ``pending_cleanup`` on the
next run, so search never sees them (hits are joined with the chunks table). ``generation``
increases with every change, so derived indexes (BM25) know when to rebuild. Each chunk records
its ``space``: the embedder whose vector store holds its vector ('' in collections made before
spaces existed: the collection's first embedder). A chunk's keyword terms are kept beside it
(``terms``, with the tokenizer version that made them), so the keyword index is rebuilt after a
change without analysing the unchanged chunks again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatapp.errors import RetrievalError
from chatapp.sqlite_connection import SharedConnection

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, kind TEXT NOT NULL, n_chunks INTEGER NOT NULL, indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, ord INTEGER NOT NULL, text TEXT NOT NULL,
    start_line INTEGER, end_line INTEGER, page INTEGER, heading TEXT NOT NULL DEFAULT '',
    tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path, ord);
CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY, op TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS terms (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, terms TEXT NOT NULL
);
"""
_CHUNK_COLUMNS = "id, path, ord, text, start_line, end_line, page, heading, tokens, space"
_TERM_SEP = "\x1f"  # never inside a term: terms are words, morphemes and bigrams


_DELETE_TERMS_OF_PATH = "DELETE FROM terms WHERE id IN (SELECT id FROM chunks WHERE path = ?)"


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    kind: str
    n_chunks: int
    indexed_at: float


@dataclass(frozen=True)
class ChunkRecord:
    id: str
    path: str
    ord: int
    text: str
    start_line: int | None
    end_line: int | None
    page: int | None
    heading: str
    tokens: int = 0
    space: str = ""


class Manifest:
    """Open (creating if needed) the manifest at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # One connection shared by the threads of a run (UI workers, the watcher).
            self._conn = SharedConnection(path, busy_timeout_s=30)
            self._db = self._conn.db
            self._db.executescript(_SCHEMA)
            self._add_space_column()
        except sqlite3.DatabaseError as exc:
            raise RetrievalError(f"collection manifest {path}: cannot be opened ({exc})") from None

    def _add_space_column(self) -> None:
        """Manifests written before embedding spaces existed get the column (default '')."""
        columns = {row[1] for row in self._run("PRAGMA table_info(chunks)")}
        if "space" not in columns:
            try:
                self._run("ALTER TABLE chunks ADD COLUMN space TEXT NOT NULL DEFAULT ''")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise

    def close(self) -> None:
        self._conn.close()

    def _run(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        return self._conn.query(sql, tuple(args))

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """All-or-nothing: a file's chunk rows and its file row change together."""
        return self._conn.transaction()

    # -- meta -----------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._run("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        self._run(
            "INSERT INTO meta(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", 0))

    def _bump(self, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1"
        )
        db.execute(
            "INSERT INTO meta(key, value) VALUES('updated_at', ?) ON CONFLICT(key) DO UPDATE "
            "SET value = excluded.value",
            (json.dumps(time.time()),),
        )

    # -- files ----------------------------------------------------------------------------

    def files(self) -> dict[str, FileRecord]:
        rows = self._run(
            "SELECT path, size, mtime_ns, sha256, kind, n_chunks, indexed_at FROM files"
        )
        return {row[0]: FileRecord(*row) for row in rows}

    def chunk_ids(self, path: str) -> list[str]:
        rows = self._run("SELECT id FROM chunks WHERE path = ? ORDER BY ord", (path,))
        return [r[0] for r in rows]

    def chunks_of(self, path: str) -> list[ChunkRecord]:
        rows = self._run(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE path = ? ORDER BY ord",
            (path,),
        )
        return [ChunkRecord(*r) for r in rows]

    def chunks_by_id(self, ids: Iterable[str]) -> dict[str, ChunkRecord]:
        wanted = list(ids)
        out: dict[str, ChunkRecord] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._run(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id IN ({marks})",
                part,
            )
            out.update({r[0]: ChunkRecord(*r) for r in rows})
        return out

    def all_chunks(self) -> list[ChunkRecord]:
        rows = self._run(f"SELECT {_CHUNK_COLUMNS} FROM chunks ORDER BY path, ord")
        return [ChunkRecord(*r) for r in rows]

    def chunk_ids_in_space(self, space: str, include_unlabelled: bool = False) -> list[str]:
        """Ids of the chunks whose vectors are in a space (with ``include_unlabelled``, also
        those recorded before spaces existed: the primary space's)."""
        sql = "SELECT id FROM chunks WHERE space = ?" + (
            " OR space = ''" if include_unlabelled else ""
        )
        return [r[0] for r in self._run(sql + " ORDER BY path, ord", (space,))]

    def space_counts(self) -> dict[str, int]:
        """Chunks per embedding space ('' for chunks of a collection made before spaces)."""
        rows = self._run("SELECT space, COUNT(*) FROM chunks GROUP BY space")
        return {str(r[0]): int(r[1]) for r in rows}

    def counts(self) -> tuple[int, int]:
        files = self._run("SELECT COUNT(*) FROM files")[0][0]
        chunks = self._run("SELECT COUNT(*) FROM chunks")[0][0]
        return int(files), int(chunks)

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """Same content, new mtime (e.g. the file was saved unchanged)."""
        self._run("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))

    def replace_file(
        self,
        record: FileRecord,
        chunks: list[ChunkRecord],
        old_ids: list[str],
        terms: tuple[int, list[list[str]]] | None = None,
    ) -> None:
        """Record a file's new chunks (already in the vector store) and mark its old chunk ids
        for deletion from the store, in one transaction; ``terms`` (tokenizer version, each
        chunk's keyword terms) are kept with the chunks."""
        with self.transaction() as db:
            db.execute(_DELETE_TERMS_OF_PATH, (record.path,))
            db.execute("DELETE FROM chunks WHERE path = ?", (record.path,))
            if terms is not None:
                version, per_chunk = terms
                db.executemany(
                    "INSERT OR REPLACE INTO terms(id, version, terms) VALUES (?, ?, ?)",
                    [
                        (c.id, version, _TERM_SEP.join(t))
                        for c, t in zip(chunks, per_chunk, strict=True)
                    ],
                )
            db.executemany(
                f"INSERT OR REPLACE INTO chunks({_CHUNK_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        c.id,
                        c.path,
                        c.ord,
                        c.text,
                        c.start_line,
                        c.end_line,
                        c.page,
                        c.heading,
                        c.tokens,
                        c.space,
                    )
                    for c in chunks
                ],
            )
            db.execute(
                "INSERT OR REPLACE INTO files(path, size, mtime_ns, sha256, kind, n_chunks, "
                "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.path,
                    record.size,
                    record.mtime_ns,
                    record.sha256,
                    record.kind,
                    record.n_chunks,
                    record.indexed_at,
                ),
            )
            new_ids = {c.id for c in chunks}
            stale = [i for i in old_ids if i not in new_ids]
            db.executemany(
                "INSERT OR REPLACE INTO pending(id, op) VALUES (?, 'delete')", [(i,) for i in stale]
            )
            db.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in new_ids])
            self._bump(db)

    def remove_file(self, path: str) -> list[str]:
        """Forget a file; its chunk ids are marked for deletion from the store and returned."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE path = ?", (path,))]
            db.execute(_DELETE_TERMS_OF_PATH, (path,))
            db.execute("DELETE FROM chunks WHERE path = ?", (path,))
            db.execute("DELETE FROM files WHERE path = ?", (path,))
            db.executemany(
                "INSERT OR REPLACE INTO pending(id, op) VALUES (?, 'delete')", [(i,) for i in ids]
            )
            self._bump(db)
        return ids

    # -- keyword terms ------------------------------------------------------------------

    def all_terms(self, version: int) -> list[tuple[str, list[str] | None]]:
        """(chunk id, its stored terms) for every chunk in ``all_chunks`` order; None where
        none are stored or another tokenizer version made them."""
        rows = self._run(
            "SELECT c.id, t.version, t.terms FROM chunks c LEFT JOIN terms t ON t.id = c.id "
            "ORDER BY c.path, c.ord"
        )
        return [
            (r[0], (r[2].split(_TERM_SEP) if r[2] else []) if r[1] == version else None)
            for r in rows
        ]

    def save_terms(self, version: int, terms: dict[str, list[str]]) -> None:
        """Keep chunks' terms (made for chunks that had none stored); forget orphaned ones."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO terms(id, version, terms) VALUES (?, ?, ?)",
                [(i, version, _TERM_SEP.join(t)) for i, t in terms.items()],
            )
            db.execute("DELETE FROM terms WHERE id NOT IN (SELECT id FROM chunks)")

    # -- the intent log -------------------------------------------------------------------

    def mark_pending_adds(self, ids: Iterable[str]) -> None:
        """Write-ahead: these ids are about to be written to the vector store."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO pending(id, op) VALUES (?, 'add')", [(i,) for i in ids]
            )

    def pending_cleanup(self) -> list[str]:
        """Ids the vector store may hold that the manifest does not reference: vectors of
        chunks replaced or removed, and adds of a run that stopped before recording them."""
        self._run("DELETE FROM pending WHERE id IN (SELECT id FROM chunks)")
        rows = self._run("SELECT id FROM pending")
        return [r[0] for r in rows]

    def clear_pending(self, ids: Iterable[str] | None = None) -> None:
        if ids is None:
            self._run("DELETE FROM pending")
            return
        with self.transaction() as db:
            db.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in ids])

"""Ordered, named schema migrations, each recorded in ``_migrations`` once applied.

Add a new ``mNNN_name`` function at the end; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Execute a multi-statement script inside the caller's transaction.

    ``executescript`` would COMMIT first, breaking the one-transaction-per-migration rule, so
    statements are split with sqlite3.complete_statement (which understands trigger bodies).
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                db.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:60]}")


SEARCH_TRIGGERS = """
        CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
"""
"""Keep the full-text index in step with messages (made by m002; m003 rebuilds the table and
makes them again, unchanged)."""


def m001_conversations_and_messages(db: sqlite3.Connection) -> None:
    run_script(
        db,
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            system_prompt TEXT,
            model TEXT,
            template TEXT,
            collection TEXT,
            active_leaf_id INTEGER
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete'
                CHECK (status IN ('complete', 'interrupted', 'error')),
            model_json TEXT,
            params_json TEXT,
            seed INTEGER,
            template TEXT,
            sources_json TEXT,
            stats_json TEXT,
            error TEXT
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE INDEX messages_by_parent ON messages(parent_id);
        CREATE INDEX conversations_by_updated ON conversations(updated_at DESC);
        """,
    )


def m002_message_search(db: sqlite3.Connection) -> None:
    # unicode61 splits on spaces and punctuation; prefix queries then find Korean words with
    # their particles attached ("영화" finds "영화가").
    run_script(
        db,
        """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            content, content='messages', content_rowid='id', tokenize='unicode61'
        );
        """
        + SEARCH_TRIGGERS,
    )


def m003_turn_records_and_streaming(db: sqlite3.Connection) -> None:
    """Messages remember what produced them (``turn_json``: the request — template and
    variables, collection and retrieval settings — and, on replies, the context plan's summary
    and citation check), and a reply is stored while it streams: status ``streaming`` with the
    process writing it in ``stream_owner``. The status CHECK changes, so the table is rebuilt
    (SQLite's documented way; foreign keys are off while migrating) and its search triggers and
    indexes are made again."""
    run_script(
        db,
        """
        CREATE TABLE messages_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete'
                CHECK (status IN ('streaming', 'complete', 'interrupted', 'error')),
            model_json TEXT,
            params_json TEXT,
            seed INTEGER,
            template TEXT,
            sources_json TEXT,
            stats_json TEXT,
            error TEXT,
            turn_json TEXT,
            stream_owner TEXT
        );
        INSERT INTO messages_new (id, conversation_id, parent_id, role, content, created_at,
            status, model_json, params_json, seed, template, sources_json, stats_json, error)
            SELECT id, conversation_id, parent_id, role, content, created_at, status, model_json,
                params_json, seed, template, sources_json, stats_json, error FROM messages;
        DROP TABLE messages;
        ALTER TABLE messages_new RENAME TO messages;
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE INDEX messages_by_parent ON messages(parent_id);
        CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';
        """
        + SEARCH_TRIGGERS,
    )


def m004_message_reasoning(db: sqlite3.Connection) -> None:
    """A thinking model's reasoning is kept apart from the answer (the answer is ``content``,
    what history and search see)."""
    db.execute("ALTER TABLE messages ADD COLUMN reasoning TEXT")


def m005_tool_messages(db: sqlite3.Connection) -> None:
    """Tool use: an assistant step's calls (``tool_calls_json``) and ``tool`` rows holding each
    call's result. The role CHECK changes, so the table is rebuilt as in m003 (whose text is
    repeated here on purpose: a shipped migration is never edited or shared)."""
    run_script(
        db,
        """
        CREATE TABLE messages_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
            content TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete'
                CHECK (status IN ('streaming', 'complete', 'interrupted', 'error')),
            model_json TEXT,
            params_json TEXT,
            seed INTEGER,
            template TEXT,
            sources_json TEXT,
            stats_json TEXT,
            error TEXT,
            turn_json TEXT,
            stream_owner TEXT,
            reasoning TEXT,
            tool_calls_json TEXT
        );
        INSERT INTO messages_new (id, conversation_id, parent_id, role, content, created_at,
            status, model_json, params_json, seed, template, sources_json, stats_json, error,
            turn_json, stream_owner, reasoning)
            SELECT id, conversation_id, parent_id, role, content, created_at, status, model_json,
                params_json, seed, template, sources_json, stats_json, error, turn_json,
                stream_owner, reasoning FROM messages;
        DROP TABLE messages;
        ALTER TABLE messages_new RENAME TO messages;
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE INDEX messages_by_parent ON messages(parent_id);
        CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';
        """
        + SEARCH_TRIGGERS,
    )


MIGRATIONS: list[Migration] = [
    m001_conversations_and_messages,
    m002_message_search,
    m003_turn_records_and_streaming,
    m004_message_reasoning,
    m005_tool_messages,
]


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; return their names.

    Foreign keys are off while migrating (a table rebuild drops and renames tables, which
    SQLite only allows that way) and checked before they are turned back on."""
    done = set(applied_migrations(db))
    if all(m.__name__ in done for m in MIGRATIONS):
        return []
    enforced = bool(db.execute("PRAGMA foreign_keys").fetchone()[0])
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        return _apply(db, done)
    finally:
        if enforced:
            db.execute("PRAGMA foreign_keys = ON")


def _apply(db: sqlite3.Connection, done: set[str]) -> list[str]:
    ran: list[str] = []
    for migration in MIGRATIONS:
        name = migration.__name__
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our check and the lock.
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                db.execute("COMMIT")
                continue
            migration(db)
            broken = db.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise sqlite3.IntegrityError(f"migration {name}: broken references {broken[:3]}")
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        ran.append(name)
    return ran

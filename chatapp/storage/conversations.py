"""The conversation store: conversations, branching messages, full-text search.

Messages form a tree through ``parent_id``: a regenerated reply is a sibling of the old one, an
edited user turn a sibling of the original. ``active_leaf_id`` on the conversation names the
branch being shown; ``thread()`` walks from it to the root.

One connection per store, guarded by a lock so UI workers may share it. WAL and a busy timeout
let two chatapp processes write the same file.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from chatapp.domain import Source, ToolCall, sources_from_dicts
from chatapp.errors import NotFoundError, StoreError
from chatapp.paths import not_writable, unwritable_reason
from chatapp.sqlite_connection import SharedConnection
from chatapp.storage.damage import damage_hint, open_failure
from chatapp.storage.migrations import migrate
from chatapp.storage.records import (
    Conversation,
    Message,
    SearchHit,
    from_json_text,
    json_text,
    sources_json,
    tool_calls_from_json,
    tool_calls_json,
    utc_now,
)
from chatapp.storage.stream_owner import stream_owner_alive, this_process_owner

__all__ = ["Conversation", "ConversationStore", "Message", "SearchHit", "fts_query"]

BUSY_TIMEOUT_MS = 15_000
_UNSET: Any = object()


def _opens_read_only(target: Path, asked: bool | None) -> bool:
    """Whether to open ``target`` read-only; a database that cannot be made is refused here."""
    if asked is not None:
        return asked
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise not_writable(target.parent, exc) from None
    reason = unwritable_reason(target.parent)
    if reason is None and target.exists() and not os.access(target, os.W_OK):
        reason = "no permission to write the database"
    if reason is not None and not target.exists():
        raise not_writable(target.parent, reason)
    return reason is not None


def _can_still_be_read(target: Path, exc: sqlite3.DatabaseError) -> bool:
    """An existing file that could not be opened for writing (a full disk cannot make its
    shared-memory file: an I/O error) may still open read-only."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return target.is_file() and code in (8, 10, 13, 14)  # READONLY, IOERR, FULL, CANTOPEN


def fts_query(text: str) -> str:
    """Turn what a user typed into a safe FTS5 query: every word quoted, prefix-matched."""
    terms = [t for t in text.replace("\x00", "").split() if t]
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms)


class ConversationStore:
    """All conversation reads and writes. ``path`` may be ``":memory:"`` for tests."""

    def __init__(self, path: Path | str, *, read_only: bool | None = None) -> None:
        """Opens (and creates) the database at ``path``. ``read_only`` None: read-only when its
        folder cannot be written (a read-only mount, no permission) and the file exists."""
        self.path = str(path)
        self.read_only = bool(read_only)
        if self.path != ":memory:":
            target = Path(self.path)
            if target.is_dir():
                raise StoreError(f"database {target}: is a directory")
            self.read_only = _opens_read_only(target, read_only)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if self.read_only or not _can_still_be_read(Path(self.path), exc):
                raise open_failure(Path(self.path), exc, self.read_only) from None
            self.read_only = True  # a full disk: what is stored can still be read
            try:
                self._open()
            except sqlite3.DatabaseError:
                raise open_failure(Path(self.path), exc, False) from None

    def _open(self) -> None:
        self._conn = SharedConnection(
            self.path,
            busy_timeout_s=BUSY_TIMEOUT_MS / 1000,
            rows_as_dicts=True,
            read_only=self.read_only,
            damage_hint=damage_hint,
        )
        try:
            self._db = self._conn.db
            try:
                migrate(self._db)
            except sqlite3.OperationalError as exc:
                if not self.read_only:
                    raise
                folder = Path(self.path).parent
                reason = unwritable_reason(folder, after_failure=True) or "read-only database"
                upgrade = "and this chatapp must first upgrade the history kept there"
                raise not_writable(folder, f"{reason} ({exc}), {upgrade}") from None
            self.recovered = 0 if self.read_only else self._recover_streaming()
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing -------------------------------------------------------------------------

    def _recover_streaming(self) -> int:
        """Replies left ``streaming`` by a process that is gone (killed, crashed, power lost)
        become ``interrupted``: their text is what was saved up to then. Replies still being
        written by a live process are left alone."""
        rows = self._read("SELECT id, stream_owner FROM messages WHERE status = 'streaming'")
        dead = [r["id"] for r in rows if not stream_owner_alive(r["stream_owner"])]
        if dead:
            marks = ", ".join("?" * len(dead))
            with self._write() as db:
                db.execute(
                    f"UPDATE messages SET status = 'interrupted', stream_owner = NULL"
                    f" WHERE status = 'streaming' AND id IN ({marks})",
                    dead,
                )
        return len(dead)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._conn.transaction()

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._conn.query(sql, args)

    # -- conversations --------------------------------------------------------------------

    def create_conversation(
        self,
        title: str = "",
        *,
        system_prompt: str | None = None,
        model: str | None = None,
        template: str | None = None,
        collection: str | None = None,
    ) -> Conversation:
        now = utc_now()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, created_at, updated_at, system_prompt, model,"
                " template, collection) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (title, now, now, system_prompt, model, template, collection),
            )
            conversation_id = int(cur.lastrowid or 0)
        return self.get_conversation(conversation_id)

    def get_conversation(self, conversation_id: int) -> Conversation:
        rows = self._read(
            "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
            " AS message_count FROM conversations c WHERE c.id = ?",
            (conversation_id,),
        )
        if not rows:
            raise NotFoundError(f"conversation {conversation_id}: no such conversation")
        return Conversation(**dict(rows[0]))

    def has_conversation(self, conversation_id: int, created_at: str | None = None) -> bool:
        """Whether the conversation is (still) stored; with ``created_at``, that one and not a
        later one under the same id (a database started afresh numbers from 1 again)."""
        rows = self._read("SELECT created_at FROM conversations WHERE id = ?", (conversation_id,))
        return bool(rows) and (created_at is None or rows[0]["created_at"] == created_at)

    def list_conversations(self, limit: int | None = None, offset: int = 0) -> list[Conversation]:
        """Newest activity first."""
        rows = self._read(
            "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
            " AS message_count FROM conversations c ORDER BY c.updated_at DESC, c.id DESC"
            " LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        )
        return [Conversation(**dict(r)) for r in rows]

    def latest_conversation(self) -> Conversation | None:
        found = self.list_conversations(limit=1)
        return found[0] if found else None

    def update_conversation(
        self,
        conversation_id: int,
        *,
        title: str | None = None,
        system_prompt: Any = _UNSET,
        model: Any = _UNSET,
        template: Any = _UNSET,
        collection: Any = _UNSET,
        active_leaf_id: Any = _UNSET,
    ) -> Conversation:
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        for name, value in (
            ("system_prompt", system_prompt),
            ("model", model),
            ("template", template),
            ("collection", collection),
            ("active_leaf_id", active_leaf_id),
        ):
            if value is not _UNSET:
                changes[name] = value
        self.get_conversation(conversation_id)
        changes["updated_at"] = utc_now()
        assignments = ", ".join(f"{k} = ?" for k in changes)
        with self._write() as db:
            db.execute(
                f"UPDATE conversations SET {assignments} WHERE id = ?",
                (*changes.values(), conversation_id),
            )
        return self.get_conversation(conversation_id)

    def rename_conversation(self, conversation_id: int, title: str) -> Conversation:
        return self.update_conversation(conversation_id, title=title.strip())

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation for good: its rows, their words in the search index and the
        old pages in the WAL (``secure_delete`` zeroes the freed space)."""
        self.get_conversation(conversation_id)
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        if self.path != ":memory:":
            self._conn.purge_deleted()

    def all_or_nothing(self) -> AbstractContextManager[sqlite3.Connection]:
        """Writes made inside this block (by this thread) commit together or not at all: a
        new conversation and its first message, so a failed first turn leaves nothing."""
        return self._write()

    # -- messages -------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        parent_id: Any = _UNSET,
        status: str = "complete",
        model: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        seed: int | None = None,
        template: str | None = None,
        sources: list[Source] | None = None,
        stats: dict[str, Any] | None = None,
        error: str | None = None,
        turn: dict[str, Any] | None = None,
        reasoning: str | None = None,
        tool_calls: list[ToolCall] | None = None,
        make_active: bool = True,
    ) -> Message:
        """Add a message. Without ``parent_id`` it continues the active branch. A message added
        with status ``streaming`` is owned by this process until ``update_message`` ends it."""
        conversation = self.get_conversation(conversation_id)
        parent = conversation.active_leaf_id if parent_id is _UNSET else parent_id
        now = utc_now()
        owner = this_process_owner() if status == "streaming" else None
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, created_at,"
                " status, model_json, params_json, seed, template, sources_json, stats_json,"
                " error, turn_json, stream_owner, reasoning, tool_calls_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    parent,
                    role,
                    content,
                    now,
                    status,
                    json_text(model),
                    json_text(params),
                    seed,
                    template,
                    sources_json(sources),
                    json_text(stats),
                    error,
                    json_text(turn),
                    owner,
                    reasoning,
                    tool_calls_json(tool_calls),
                ),
            )
            message_id = int(cur.lastrowid or 0)
            leaf_sql = ", active_leaf_id = ?" if make_active else ""
            args: tuple[Any, ...] = (
                (now, message_id, conversation_id) if make_active else (now, conversation_id)
            )
            db.execute(f"UPDATE conversations SET updated_at = ?{leaf_sql} WHERE id = ?", args)
        return self.get_message(message_id)

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        status: str | None = None,
        stats: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
        sources: list[Source] | None = None,
        error: str | None = None,
        turn: dict[str, Any] | None = None,
        reasoning: str | None = None,
        tool_calls: list[ToolCall] | None = None,
    ) -> Message:
        message = self.get_message(message_id)
        changes: dict[str, Any] = {}
        if content is not None:
            changes["content"] = content
        if status is not None:
            changes["status"] = status
            if status != "streaming":
                changes["stream_owner"] = None
        if turn is not None:
            changes["turn_json"] = json_text(turn)
        if reasoning is not None:
            changes["reasoning"] = reasoning
        if stats is not None:
            changes["stats_json"] = json_text(stats)
        if model is not None:
            changes["model_json"] = json_text(model)
        if sources is not None:
            changes["sources_json"] = sources_json(sources)
        if error is not None:
            changes["error"] = error
        if tool_calls is not None:
            changes["tool_calls_json"] = tool_calls_json(tool_calls)
        if changes:
            assignments = ", ".join(f"{k} = ?" for k in changes)
            with self._write() as db:
                db.execute(
                    f"UPDATE messages SET {assignments} WHERE id = ?",
                    (*changes.values(), message_id),
                )
                db.execute(
                    "UPDATE conversations SET updated_at = ? WHERE id = ?",
                    (utc_now(), message.conversation_id),
                )
        return self.get_message(message_id)

    def save_streamed_text(
        self, message_id: int, content: str, reasoning: str | None = None
    ) -> bool:
        """Save the text (and reasoning) of a reply that is still streaming: one short
        transaction of its own, nothing else touched (called every ~0.5 s while a reply grows).
        False when the row is gone (its conversation was deleted meanwhile) or no longer
        streaming."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE messages SET content = ?, reasoning = COALESCE(?, reasoning)"
                " WHERE id = ? AND status = 'streaming'",
                (content, reasoning, message_id),
            )
            return cur.rowcount > 0

    def get_message(self, message_id: int) -> Message:
        rows = self._read("SELECT * FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise NotFoundError(f"message {message_id}: no such message")
        return self._message(rows[0])

    def messages(self, conversation_id: int) -> list[Message]:
        """Every message of a conversation, all branches, oldest first."""
        self.get_conversation(conversation_id)
        rows = self._read(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )
        return [self._message(r) for r in rows]

    def thread(self, conversation_id: int, leaf_id: int | None = None) -> list[Message]:
        """The branch ending at ``leaf_id`` (default: the active one), root first."""
        conversation = self.get_conversation(conversation_id)
        leaf = leaf_id if leaf_id is not None else conversation.active_leaf_id
        if leaf is None:
            return []
        rows = self._read(
            "WITH RECURSIVE chain(id, parent_id, depth) AS ("
            " SELECT id, parent_id, 0 FROM messages WHERE id = ? AND conversation_id = ?"
            " UNION ALL SELECT m.id, m.parent_id, chain.depth + 1 FROM messages m"
            " JOIN chain ON m.id = chain.parent_id)"
            " SELECT m.* FROM messages m JOIN chain ON m.id = chain.id ORDER BY chain.depth DESC",
            (leaf, conversation_id),
        )
        return [self._message(r) for r in rows]

    def children(self, message_id: int | None, conversation_id: int) -> list[Message]:
        if message_id is None:
            rows = self._read(
                "SELECT * FROM messages WHERE conversation_id = ? AND parent_id IS NULL"
                " ORDER BY id",
                (conversation_id,),
            )
        else:
            rows = self._read(
                "SELECT * FROM messages WHERE parent_id = ? ORDER BY id", (message_id,)
            )
        return [self._message(r) for r in rows]

    def siblings(self, message_id: int) -> list[Message]:
        """The message and its alternatives (same parent), oldest first."""
        message = self.get_message(message_id)
        return self.children(message.parent_id, message.conversation_id)

    def deepest_leaf(self, message_id: int) -> int:
        """Follow the newest child from ``message_id`` down to a leaf (to switch branches)."""
        current = self.get_message(message_id)
        while True:
            kids = self.children(current.id, current.conversation_id)
            if not kids:
                return current.id
            current = kids[-1]

    def set_active_leaf(self, conversation_id: int, leaf_id: int) -> Conversation:
        return self.update_conversation(conversation_id, active_leaf_id=leaf_id)

    # -- search ---------------------------------------------------------------------------

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search over message text; best matches first, one hit per message."""
        match = fts_query(query)
        if not match:
            return []
        try:
            rows = self._read(
                "SELECT m.id AS message_id, m.conversation_id, m.role, c.title, c.updated_at,"
                " snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet, bm25(messages_fts)"
                " AS rank FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
                " JOIN conversations c ON c.id = m.conversation_id"
                " WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
                (match, limit),
            )
        except sqlite3.OperationalError:
            return []
        return [SearchHit(**dict(r)) for r in rows]

    def search_conversations(self, query: str, limit: int = 50) -> list[Conversation]:
        """Conversations whose title or messages match, newest first (the sidebar filter)."""
        if not query.strip():
            return self.list_conversations(limit=limit)
        ids: list[int] = []
        for hit in self.search(query, limit=500):
            if hit.conversation_id not in ids:
                ids.append(hit.conversation_id)
        needle = f"%{query.strip()}%"
        for row in self._read("SELECT id FROM conversations WHERE title LIKE ?", (needle,)):
            if row["id"] not in ids:
                ids.append(row["id"])
        found = [self.get_conversation(i) for i in ids]
        found.sort(key=lambda c: c.updated_at, reverse=True)
        return found[:limit]

    @staticmethod
    def _message(row: sqlite3.Row) -> Message:
        data = dict(row)
        return Message(
            id=data["id"],
            conversation_id=data["conversation_id"],
            parent_id=data["parent_id"],
            role=data["role"],
            content=data["content"],
            created_at=data["created_at"],
            status=data["status"],
            model=from_json_text(data["model_json"]),
            params=from_json_text(data["params_json"]),
            seed=data["seed"],
            template=data["template"],
            sources=sources_from_dicts(from_json_text(data["sources_json"])),
            stats=from_json_text(data["stats_json"]),
            error=data["error"],
            turn=from_json_text(data.get("turn_json")),
            reasoning=data.get("reasoning"),
            tool_calls=tool_calls_from_json(data.get("tool_calls_json")),
        )

"""The conversation store: CRUD, branching, FTS search, export, corruption, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from chatapp.domain import Source
from chatapp.errors import NotFoundError, StoreError
from chatapp.storage import ConversationStore
from chatapp.storage.export import export_json, export_markdown


def test_conversation_roundtrip(store: ConversationStore) -> None:
    conv = store.create_conversation("first", system_prompt="be brief", model="m")
    user = store.add_message(conv.id, "user", "hello")
    reply = store.add_message(
        conv.id,
        "assistant",
        "hi!",
        model={"name": "m"},
        params={"temperature": 0.2},
        seed=7,
        stats={"prompt_tokens": 5},
        sources=[Source("hello", "a.md", n=1)],
        template="chat",
    )
    assert reply.parent_id == user.id
    loaded = store.get_message(reply.id)
    assert (
        loaded.model == {"name": "m"}
        and loaded.seed == 7
        and loaded.sources == [Source("hello", "a.md", n=1)]
    )
    assert [m.content for m in store.thread(conv.id)] == ["hello", "hi!"]
    assert store.get_conversation(conv.id).message_count == 2


def test_list_is_newest_first(store: ConversationStore) -> None:
    a = store.create_conversation("a")
    b = store.create_conversation("b")
    store.add_message(a.id, "user", "bump a")
    assert [c.id for c in store.list_conversations()] == [a.id, b.id]


def test_regenerate_branches_instead_of_overwriting(store: ConversationStore) -> None:
    conv = store.create_conversation("x")
    user = store.add_message(conv.id, "user", "q")
    first = store.add_message(conv.id, "assistant", "one")
    second = store.add_message(conv.id, "assistant", "two", parent_id=user.id)
    assert [m.id for m in store.siblings(first.id)] == [first.id, second.id]
    assert store.thread(conv.id)[-1].content == "two"
    store.set_active_leaf(conv.id, first.id)
    assert store.thread(conv.id)[-1].content == "one"
    assert store.get_message(first.id).content == "one"


def test_deepest_leaf_follows_newest_child(store: ConversationStore) -> None:
    conv = store.create_conversation("x")
    u1 = store.add_message(conv.id, "user", "q1")
    a1 = store.add_message(conv.id, "assistant", "a1")
    u2 = store.add_message(conv.id, "user", "q2")
    assert store.deepest_leaf(u1.id) == u2.id
    assert store.deepest_leaf(a1.id) == u2.id


def test_search_finds_words_prefixes_and_korean(store: ConversationStore) -> None:
    conv = store.create_conversation("movies")
    store.add_message(conv.id, "user", "이 영화가 정말 재미있었어요")
    store.add_message(conv.id, "assistant", "The llama sat quietly.")
    assert store.search("영화")[0].conversation_id == conv.id
    assert store.search("llam")[0].role == "assistant"
    assert store.search("nothing-like-this") == []


@pytest.mark.parametrize("query", ['"', "AND", "a OR", "*", "NEAR(", "{x}", "$x", "col:val"])
def test_search_treats_syntax_as_text(store: ConversationStore, query: str) -> None:
    conv = store.create_conversation("t")
    store.add_message(conv.id, "user", f"literal {query} here")
    store.search(query)  # never raises


def test_search_conversations_matches_titles(store: ConversationStore) -> None:
    a = store.create_conversation("Trip to Busan")
    store.create_conversation("Other")
    assert [c.id for c in store.search_conversations("busan")] == [a.id]
    assert len(store.search_conversations("")) == 2


def test_update_message_reindexes_search(store: ConversationStore) -> None:
    conv = store.create_conversation("t")
    m = store.add_message(conv.id, "assistant", "partial", status="interrupted")
    store.update_message(m.id, content="finished answer", status="complete")
    assert store.search("finished")[0].message_id == m.id
    assert store.search("partial") == []


def test_delete_removes_messages_and_search_rows(store: ConversationStore) -> None:
    conv = store.create_conversation("gone")
    store.add_message(conv.id, "user", "unique-word-xyz")
    store.delete_conversation(conv.id)
    with pytest.raises(NotFoundError, match=f"conversation {conv.id}"):
        store.get_conversation(conv.id)
    assert store.search("unique") == []


def test_unknown_ids_raise_clear_errors(store: ConversationStore) -> None:
    with pytest.raises(NotFoundError, match="conversation 42: no such conversation"):
        store.thread(42)
    with pytest.raises(NotFoundError, match="message 7"):
        store.get_message(7)


def test_corrupt_database_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "chatapp.db"
    junk = b"this is not a database, just bytes " * 200
    path.write_bytes(junk)
    with pytest.raises(StoreError, match="cannot be opened") as info:
        ConversationStore(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == junk


def test_directory_as_database_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        ConversationStore(tmp_path)


def test_wal_mode_and_busy_timeout(tmp_path: Path) -> None:
    with ConversationStore(tmp_path / "db.sqlite") as s:
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000


def _writer(path: str, tag: str, count: int) -> None:
    store = ConversationStore(path)
    conv = store.create_conversation(tag)
    for i in range(count):
        store.add_message(conv.id, "user", f"{tag} {i}")
    store.close()


def test_two_processes_write_the_same_database(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ConversationStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, tag, 40)) for tag in ("alpha", "beta")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with ConversationStore(path) as s:
        assert sorted(c.message_count for c in s.list_conversations()) == [40, 40]


def test_export_markdown_and_json(store: ConversationStore) -> None:
    conv = store.create_conversation("Export me", system_prompt="sys")
    user = store.add_message(conv.id, "user", "질문")
    store.add_message(conv.id, "assistant", "old", parent_id=user.id)
    store.add_message(
        conv.id,
        "assistant",
        "new [1]",
        parent_id=user.id,
        model={"name": "tiny"},
        sources=[Source("…", "notes.md", start_line=3, end_line=9, n=1)],
    )
    md = export_markdown(store, conv.id)
    assert "# Export me" in md and "질문" in md and "new [1]" in md and "old" not in md
    assert "[1] notes.md:3-9" in md
    data = json.loads(export_json(store, conv.id))
    assert len(data["messages"]) == 3
    assert [m["on_active_branch"] for m in data["messages"]] == [True, False, True]


def test_store_is_plain_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with ConversationStore(path) as s:
        s.create_conversation("visible")
    rows = sqlite3.connect(path).execute("SELECT title FROM conversations").fetchall()
    assert rows == [("visible",)]


def test_a_damaged_sources_row_reads_as_defaults(tmp_path: Path) -> None:
    """Sources are JSON at the storage edge: a hand-edited or damaged row (wrong types, entries
    that are not objects, unknown keys) reads as Source values with defaults, and the export
    that lists them still works."""
    path = tmp_path / "chat.db"
    with ConversationStore(path) as store:
        conv = store.create_conversation("damaged")
        user = store.add_message(conv.id, "user", "question")
        reply = store.add_message(conv.id, "assistant", "answer [1]", parent_id=user.id,
                                  sources=[Source("t", "a.md", n=1)])  # fmt: skip
    damaged = [
        {"n": "1", "path": 7, "start_line": "x", "score": "high", "similarity": 1, "extra": []},
        "not an object",
        {"text": "kept", "display_path": "b.md", "page": 2, "trimmed": True},
    ]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET sources_json = ? WHERE id = ?",
                   (json.dumps(damaged), reply.id))  # fmt: skip
    with ConversationStore(path) as store:
        first, second = store.get_message(reply.id).sources or []
        assert first == Source("", "", similarity=1.0)
        assert second == Source("kept", "b.md", "b.md", page=2)
        assert "- [?] source\n- [?] b.md p.2" in export_markdown(store, conv.id)

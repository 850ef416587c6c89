"""A deleted conversation does not live on in the warm-resume cache: saved KV states hold the
conversation's token ids (detokenized, the whole conversation), so deleting it deletes every
state that holds them, and a reply whose conversation is deleted while it streams saves nothing.
The cache stays under its size bound. Real ``chatapp`` subprocesses, the bundled model through
real llama.cpp; the checks read token ids, never detokenize."""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from chatapp.engine.kv_state_files import MAGIC, SUFFIX, read_header
from tests.security.conftest import chatapp_env, run_chatapp

SECRET = "My secret password is PURPLE-OTTER-7731"


def model_env(home: Path) -> dict[str, str]:
    """The real in-process backend with the bundled model (not the suite's fake)."""
    env = chatapp_env(home)
    env.pop("CHATAPP_BACKEND__KIND")
    return env


def ask_model(home: Path, *words: str) -> None:
    run = run_chatapp(
        home, "ask", "--temperature", "0", "--max-tokens", "24", *words, env=model_env(home)
    )
    assert run.code == 0, run.err


def states(home: Path) -> list[Path]:
    return sorted((home / "cache" / "kv-states").glob(f"*/*{SUFFIX}"))


def owners(path: Path) -> tuple[str, ...]:
    return read_header(path).conversations


def secret_token_bytes(bundled_gguf: Path) -> bytes:
    """The secret sentence's token ids as a state file stores them (int32, little-endian)."""
    import llama_cpp

    vocab = llama_cpp.Llama(str(bundled_gguf), vocab_only=True, verbose=False)
    ids = vocab.tokenize(SECRET.encode(), add_bos=False, special=False)
    assert len(ids) >= 8
    return np.asarray(ids, dtype="<i4").tobytes()


def files_holding(home: Path, needle: bytes) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_history_rm_deletes_every_state_holding_the_conversation(
    chatapp_home: Path, bundled_gguf: Path
) -> None:
    home = chatapp_home
    secret = secret_token_bytes(bundled_gguf)
    ask_model(home, SECRET + ". Remember it.")
    ask_model(home, "Tell me one fact about the sea.")
    # Positive control: a saved state holds the secret's token ids, and names conversation 1.
    holding = files_holding(home, secret)
    assert holding and all(p.suffix == SUFFIX for p in holding), holding
    assert all(any(o.startswith("1@") for o in owners(p)) for p in holding)

    run = run_chatapp(home, "history", "rm", "1")
    assert run.code == 0, run.err

    left = states(home)
    assert not [p for p in left if any(o.startswith("1@") for o in owners(p))]
    assert files_holding(home, secret) == [], "the deleted conversation's tokens are on disk"
    # The other conversation keeps its state (deleting one chat costs the others nothing).
    assert [p for p in left if any(o.startswith("2@") for o in owners(p))]


def _streaming_reply(db: Path) -> int | None:
    """The conversation whose reply is streaming with some text saved, if any yet."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute(
                "SELECT conversation_id FROM messages WHERE role = 'assistant'"
                " AND status = 'streaming' AND length(content) > 0"
            ).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


@pytest.mark.slow
def test_history_rm_while_the_reply_streams_leaves_no_state_and_no_conversation(
    chatapp_home: Path,
) -> None:
    home = chatapp_home
    asking = subprocess.Popen(
        [sys.executable, "-m", "chatapp", "ask", "--temperature", "0", "--max-tokens", "1500",
         "List 500 animals, numbered."],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=model_env(home),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        conversation = None
        while conversation is None and time.monotonic() < deadline:
            assert asking.poll() is None, asking.communicate()
            time.sleep(0.1)
            conversation = _streaming_reply(home / "data" / "chatapp.db")
        assert conversation is not None, "the reply never started streaming"
        removed = run_chatapp(home, "history", "rm", str(conversation))
        assert removed.code == 0, removed.err
        out, err = asking.communicate(timeout=120)
    finally:
        if asking.poll() is None:
            asking.kill()
    err_text = err.decode()
    assert "Traceback" not in err_text and "no such message" not in err_text, err_text
    lines = [line for line in err_text.splitlines() if line.strip()]
    assert lines == [
        f"error: conversation {conversation} was deleted while its reply was being written;"
        " the reply was not saved"
    ], err_text
    assert asking.returncode == 1
    assert out  # the reply had been streaming
    assert states(home) == [] and list((home / "cache").rglob("*.partial")) == []
    listed = run_chatapp(home, "history", "list", "--json")
    assert listed.code == 0 and json.loads(listed.out) == []


def _state_file(folder: Path, name: str, conversations: list[str] | None) -> Path:
    """A state file as chatapp writes one (header, tokens, state bytes); ``None``: a header
    from before states named their conversation."""
    header: dict[str, object] = {
        "model_sha256": folder.name.rsplit("-", 1)[0], "n_ctx": 2048, "n_tokens": 4,
        "tokens_sha256": "0" * 64, "state_sha256": "0" * 64, "state_bytes": 8,
        "llama_cpp": "0.3.36",
    }  # fmt: skip
    if conversations is not None:
        header["conversations"] = conversations
    raw = json.dumps(header).encode()
    path = folder / f"{name}{SUFFIX}"
    path.write_bytes(MAGIC + struct.pack("<I", len(raw)) + raw + b"\1\0\0\0" * 4 + b"\0" * 8)
    return path


def test_a_deletion_also_takes_states_of_gone_unnamed_and_half_written_kinds(home: Path) -> None:
    """States an older version left (naming no conversation), states of a conversation
    deleted before this version, unreadable ones and a half-written one may hold the deleted
    conversation's tokens: they go with it; a live conversation's state stays."""
    assert run_chatapp(home, "ask", "a second conversation").code == 0
    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        first, second = sorted(store.list_conversations(), key=lambda c: c.id)
    folder = home / "cache" / "kv-states" / ("a" * 64 + "-2048")
    folder.mkdir(parents=True)
    live = _state_file(folder, "live", [f"{second.id}@{second.created_at}"])
    doomed = _state_file(folder, "doomed", [f"{first.id}@{first.created_at}"])
    older = _state_file(folder, "older", None)
    gone = _state_file(folder, "gone", ["99@2020-01-01T00:00:00+00:00"])
    reused_id = _state_file(folder, "reused", [f"{second.id}@2020-01-01T00:00:00+00:00"])
    junk = folder / f"junk{SUFFIX}"
    junk.write_bytes(b"not a state")
    partial = folder / "half.partial"
    partial.write_bytes(MAGIC)

    run = run_chatapp(home, "history", "rm", str(first.id))
    assert run.code == 0, run.err
    assert live.exists()
    for path in (doomed, older, gone, reused_id, junk, partial):
        assert not path.exists(), path.name


def test_cache_clear_deletes_half_written_states_too(home: Path) -> None:
    folder = home / "cache" / "kv-states" / ("b" * 64 + "-2048")
    folder.mkdir(parents=True)
    kept = _state_file(folder, "whole", ["1@x"])
    partial = folder / "half.partial"
    partial.write_bytes(MAGIC + b"tokens of a conversation")
    run = run_chatapp(home, "cache", "clear")
    assert run.code == 0, run.err
    assert not kept.exists() and not partial.exists()
    assert "deleted 1 saved state" in run.out


@pytest.mark.slow
def test_the_cache_stays_under_its_default_bound(chatapp_home: Path) -> None:
    """~25 short runs grew the cache to 238 MB: with the default bound, states least recently
    used go first and the folder stays at 128 MiB or less; the newest state is kept."""
    home = chatapp_home
    folder = home / "cache" / "kv-states" / ("c" * 64 + "-2048")
    folder.mkdir(parents=True)
    old = time.time() - 3600
    for i in range(20):  # 20 earlier runs' states, 10 MiB each, an hour old
        path = folder / f"{i:032x}{SUFFIX}"
        with path.open("wb") as out:
            out.truncate(10 * 2**20)
        os.utime(path, (old + i, old + i))
    ask_model(home, "Tell me one fact about the sea, please, in one sentence.")
    total = sum(p.stat().st_size for p in states(home))
    assert total <= 128 * 2**20, total / 2**20
    newest = [p for p in states(home) if p.parent != folder]
    assert newest, "the new state was not kept"


async def test_deleting_a_chat_in_the_ui_deletes_its_saved_states(chatapp_home: Path) -> None:
    """F8 in the chat deletes through the same function as ``history rm``: the conversation's
    saved states go with it, another conversation's stay."""
    from chatapp.config import Settings
    from chatapp.engine.fake import FakeBackend
    from chatapp.session.deletion import state_key
    from chatapp.storage import ConversationStore
    from chatapp.ui.app import ChatApp
    from tests.ui.conftest import settle, wait_for

    store = ConversationStore(chatapp_home / "data" / "chatapp.db")
    doomed = store.create_conversation("doomed")
    store.add_message(doomed.id, "user", SECRET)
    kept = store.create_conversation("kept")
    store.add_message(kept.id, "user", "something else")
    folder = chatapp_home / "cache" / "kv-states" / ("e" * 64 + "-2048")
    folder.mkdir(parents=True)
    doomed_state = _state_file(folder, "doomed", [state_key(doomed)])
    kept_state = _state_file(folder, "kept", [state_key(store.get_conversation(kept.id))])
    backend = FakeBackend()
    app = ChatApp(Settings(), store, lambda: backend, load_extensions=False)
    try:
        async with app.run_test() as pilot:
            await settle(pilot)
            await app.chat_screen.open_conversation(doomed.id)
            await pilot.press("f8")
            await pilot.pause()
            await pilot.click("#confirm")
            await wait_for(pilot, lambda: not store.has_conversation(doomed.id))
            await settle(pilot)
    finally:
        app.close_resources()
    assert not doomed_state.exists()
    assert kept_state.exists()
    store.close()


async def test_deleting_a_chat_the_ui_cannot_delete_is_a_notice(chatapp_home: Path) -> None:
    """F8 on a history that cannot be written (opened read-only, as on a read-only mount):
    the chat says why and keeps running; the conversation is still there."""
    from chatapp.config import Settings
    from chatapp.engine.fake import FakeBackend
    from chatapp.storage import ConversationStore
    from chatapp.ui.app import ChatApp
    from tests.ui.conftest import settle

    path = chatapp_home / "data" / "chatapp.db"
    with ConversationStore(path) as writable:
        kept = writable.create_conversation("kept")
        writable.add_message(kept.id, "user", "still here")
    store = ConversationStore(path, read_only=True)
    backend = FakeBackend()
    app = ChatApp(Settings(), store, lambda: backend, load_extensions=False)
    try:
        async with app.run_test() as pilot:
            await settle(pilot)
            await app.chat_screen.open_conversation(kept.id)
            await pilot.press("f8")
            await pilot.pause()
            await pilot.click("#confirm")
            await settle(pilot)
            messages = [n.message for n in app._notifications]
            assert any("cannot save there" in m for m in messages), messages
            assert app.chat_screen.conversation_id == kept.id
    finally:
        app.close_resources()
    assert store.has_conversation(kept.id)
    store.close()

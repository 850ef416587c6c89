"""Warm resume across processes with the bundled model through real llama.cpp: a conversation's
KV state saved after a reply is loaded by the next process, which evaluates only what is new —
with the same output at temperature 0 as a cold run; damaged, foreign or mismatched states are
ignored (and deleted), never trusted; the folder stays under its size bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.config import ModelSettings
from chatapp.domain import ChatMessage, GenerationParams, TokenEvent
from chatapp.engine.kv_state_cache import KVStateCache, cache_size, states_dir

pytestmark = pytest.mark.slow

HISTORY = [
    ChatMessage("system", "You are a helpful, concise assistant."),
    ChatMessage("user", "Tell me three facts about the sea. " * 6),
    ChatMessage("assistant", "The sea is salty. It covers most of Earth. It is deep. " * 4),
]
NEXT = ChatMessage("user", "And one about rivers?")
GREEDY = GenerationParams(temperature=0.0, seed=1, max_tokens=24)


def open_backend(path: Path, kv_mb: int = 64):
    from chatapp.engine.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(path, ModelSettings(n_ctx=2048, kv_cache_mb=kv_mb))


def answer(backend, messages) -> tuple[str, int]:
    events = list(backend.stream_chat(messages, GREEDY))
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    return text, events[-1].stats.cached_tokens


def first_process(path: Path) -> None:
    """A process that answered the history's question, then ended (saving its state)."""
    backend = open_backend(path)
    answer(backend, HISTORY[:2])
    backend.close()


def test_the_next_process_reuses_the_saved_state_with_the_same_output(bundled_gguf) -> None:
    """Resuming from disk is exact: the next process answers as one that never stopped (same
    KV cache, same evaluation batches), and evaluates only what the saved state lacks."""
    first_process(bundled_gguf)
    assert cache_size()[0] == 1
    kept_running = open_backend(bundled_gguf, kv_mb=0)
    answer(kept_running, HISTORY[:2])
    running_text, running_cached = answer(kept_running, [*HISTORY, NEXT])
    kept_running.close()
    warm = open_backend(bundled_gguf)
    prompt_tokens = warm.count_chat_tokens([*HISTORY, NEXT])
    question_tokens = warm.count_chat_tokens(HISTORY[:2])
    warm_text, warm_cached = answer(warm, [*HISTORY, NEXT])
    warm.close()
    # The history's question came from the saved state; the reply and the new turn are new.
    assert warm_cached == running_cached >= question_tokens - 8
    assert warm_cached < prompt_tokens
    assert warm_text == running_text


def test_a_resumed_prompt_answers_as_a_cold_read_of_it(bundled_gguf) -> None:
    """When the saved state holds the whole prompt (a reply stopped and asked again), the
    resumed reply is the same as reading the prompt cold."""
    chat = [*HISTORY, NEXT]
    saver = open_backend(bundled_gguf)
    answer(saver, chat)
    saver.close()
    cold = open_backend(bundled_gguf, kv_mb=0)
    cold_text, cold_cached = answer(cold, chat)
    cold.close()
    warm = open_backend(bundled_gguf)
    warm_text, warm_cached = answer(warm, chat)
    prompt_tokens = warm.count_chat_tokens(chat)
    warm.close()
    assert cold_cached == 0 and warm_cached == prompt_tokens - 1
    assert warm_text == cold_text


def _only_state() -> Path:
    [path] = list(states_dir().glob("*/*.kvstate"))
    return path


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "not a state file"])
def test_a_damaged_state_is_ignored_and_deleted(bundled_gguf, damage: str) -> None:
    first_process(bundled_gguf)
    path = _only_state()
    data = bytearray(path.read_bytes())
    if damage == "flipped byte":
        data[-100] ^= 0xFF
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = bytearray(b"hello" * 100)
    path.write_bytes(bytes(data))
    backend = open_backend(bundled_gguf)
    text, cached = answer(backend, [*HISTORY, NEXT])
    backend.close()
    assert cached == 0 and text  # read cold, answered all the same
    assert not path.exists()


def test_a_state_of_another_model_or_context_is_not_used(bundled_gguf, tmp_path) -> None:
    first_process(bundled_gguf)
    path = _only_state()
    real_folder = path.parent
    sha, n_ctx = real_folder.name.rsplit("-", 1)
    # The same file presented as another context size's, and under another model's folder.
    other_ctx = KVStateCache(sha, int(n_ctx) * 2, max_bytes=2**30)
    other_ctx.folder.mkdir(parents=True)
    (other_ctx.folder / path.name).write_bytes(path.read_bytes())
    assert other_ctx.entries() == []  # its header says 2048: ignored and deleted
    assert not (other_ctx.folder / path.name).exists()
    other_model = KVStateCache("0" * 64, int(n_ctx), max_bytes=2**30)
    other_model.folder.mkdir(parents=True)
    (other_model.folder / path.name).write_bytes(path.read_bytes())
    assert other_model.entries() == []


def test_a_state_whose_tokens_do_not_lead_the_prompt_is_not_used(bundled_gguf) -> None:
    first_process(bundled_gguf)
    backend = open_backend(bundled_gguf)
    other = [ChatMessage("user", "Something entirely different: how do bees fly? " * 4)]
    _, cached = answer(backend, other)
    backend.close()
    assert cached == 0


def test_the_cache_stays_under_its_size_bound(bundled_gguf) -> None:
    backend = open_backend(bundled_gguf)
    for topic in ("the sea", "mountains", "deserts"):
        answer(backend, [ChatMessage("user", f"Tell me about {topic}. " * 8)])
        backend._resume.wait()
    one_state = max(p.stat().st_size for p in states_dir().glob("*/*.kvstate"))
    backend.close()
    assert cache_size()[0] == 3
    small = KVStateCache("x" * 64, 2048, max_bytes=int(one_state * 1.5))
    small.evict()
    files, size = cache_size()
    assert files == 1 and size <= one_state * 1.5


def test_ask_continue_in_a_new_process_starts_warm(chatapp_home: Path) -> None:
    env = {**os.environ, "CHATAPP_HOME": str(chatapp_home)}

    def ask(*argv: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "chatapp", "ask", "--json", "--temperature", "0",
             "--max-tokens", "24", *argv],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    ask("Tell me a fact about the sea. " * 4)
    second = ask("--continue", "Another one, please.")
    stats = second["stats"]
    assert stats["cached_tokens"] > stats["prompt_tokens"] // 2
    cleared = subprocess.run(
        [sys.executable, "-m", "chatapp", "cache", "clear"], capture_output=True, text=True,
        env=env, timeout=60,
    )  # fmt: skip
    assert cleared.returncode == 0 and "deleted 1 saved state" in cleared.stdout
    assert cache_size() == (0, 0)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_saved_states_are_readable_by_the_user_alone(bundled_gguf) -> None:
    """A state holds the conversation's tokens: every folder 0700, every file 0600."""
    first_process(bundled_gguf)
    root = states_dir()
    found = [root, *root.rglob("*")]
    assert any(p.is_file() for p in found)
    for path in found:
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path

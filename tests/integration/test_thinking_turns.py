"""Turns with a model that thinks, end to end through the session, the store and the CLI, on a
tiny real GGUF with Qwen3's published template (it thinks "Cats sleep a lot." and answers
"Hello!"): the reasoning is stored apart, never sent back in the next turn's prompt, `ask`
prints only the answer, and `eval` scores the answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.session import ChatSession, TurnRequest, consume
from tests.support.tiny_gguf import THINKING_ANSWER, THINKING_REASONING, write_thinking_gguf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def thinker(tmp_path_factory: pytest.TempPathFactory, bundled_gguf: Path) -> Path:
    return write_thinking_gguf(
        tmp_path_factory.mktemp("thinker") / "tiny-thinking.gguf", tokenizer_from=bundled_gguf
    )


@pytest.fixture(scope="module")
def thinking_backend(thinker: Path):
    from chatapp.config import ModelSettings
    from chatapp.engine.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(thinker, ModelSettings(n_ctx=1024), name="tiny-thinking")
    yield backend
    backend.close()


def chatapp(home: Path, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHATAPP_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "chatapp", *argv],
        input=stdin, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_reasoning_is_stored_apart_and_not_sent_back(thinking_backend, store) -> None:
    session = ChatSession(thinking_backend, store, system_prompt="Be brief.")
    thought: list[str] = []
    first = consume(session.send(TurnRequest("Do cats sleep a lot?")), on_reasoning=thought.append)
    assert first.text == THINKING_ANSWER and first.reasoning == THINKING_REASONING
    assert "".join(thought) == THINKING_REASONING
    stored = store.get_message(first.message.id)
    assert stored.content == THINKING_ANSWER and stored.reasoning == THINKING_REASONING
    assert stored.stats["reasoning_tokens"] > 0 and stored.params["thinking"] == "default"
    second = consume(session.send(TurnRequest("And dogs?")))
    prompt = thinking_backend.format_chat(second.plan.messages)
    assert THINKING_ANSWER in prompt and "Do cats sleep a lot?" in prompt
    assert "Cats sleep" not in prompt  # the earlier reasoning is not in the next turn


def test_thinking_off_for_one_turn_is_recorded(thinking_backend, store) -> None:
    session = ChatSession(thinking_backend, store)
    result = consume(session.send(TurnRequest("Hi", params={"thinking": "off"})))
    assert result.reasoning == "" and result.text.strip().startswith("Hello")
    assert result.message.params["thinking"] == "off" and result.message.reasoning is None


def test_ask_prints_only_the_answer(thinker: Path, chatapp_home: Path) -> None:
    plain = chatapp(chatapp_home, "ask", "--model", str(thinker), "Do cats sleep?")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == THINKING_ANSWER
    assert THINKING_REASONING not in plain.stderr and "thought" in plain.stderr
    shown = chatapp(chatapp_home, "ask", "--model", str(thinker), "--show-thinking", "Hi")
    assert shown.stdout.strip() == THINKING_ANSWER and THINKING_REASONING in shown.stderr
    as_json = chatapp(chatapp_home, "ask", "--model", str(thinker), "--json", "Hi")
    data = json.loads(as_json.stdout)
    assert data["text"] == THINKING_ANSWER and data["reasoning"] == THINKING_REASONING
    shown_history = chatapp(chatapp_home, "history", "show", str(data["conversation_id"]), "--json")
    reply = json.loads(shown_history.stdout)["messages"][-1]
    assert reply["content"] == THINKING_ANSWER and reply["reasoning"] == THINKING_REASONING


def test_eval_scores_the_answer_not_the_thinking(
    thinker: Path, chatapp_home: Path, tmp_path
) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"text": "안녕하세요", "label": THINKING_ANSWER}) + "\n", "utf-8")
    result = chatapp(
        chatapp_home, "eval", "translate", "-d", str(data), "--model", str(thinker), "--json",
        "-o", str(tmp_path / "results.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [run] = json.loads(result.stdout)["runs"]
    [item] = run["items"]
    assert item["output"] == THINKING_ANSWER
    assert run["metrics"]["chrf"] == pytest.approx(100.0)

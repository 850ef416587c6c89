"""A model that thinks, through real llama.cpp: a tiny scripted GGUF with Qwen3's real chat
template (tests/support/tiny_gguf.py) answers ``<think>Cats sleep a lot.</think>Hello!``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.domain import (
    ChatMessage,
    DoneEvent,
    GenerationParams,
    ReasoningEvent,
    TokenEvent,
)
from tests.support.tiny_gguf import THINKING_ANSWER, THINKING_REASONING, write_thinking_gguf

pytestmark = pytest.mark.slow

CHAT = [ChatMessage("system", "Be brief."), ChatMessage("user", "고양이는 잠을 많이 자나요?")]


@pytest.fixture(scope="module")
def thinking_backend(tmp_path_factory: pytest.TempPathFactory, bundled_gguf: Path) -> Iterator:
    from chatapp.config import ModelSettings
    from chatapp.engine.llama_cpp import LlamaCppBackend

    path = write_thinking_gguf(
        tmp_path_factory.mktemp("thinking") / "tiny-thinking.gguf", tokenizer_from=bundled_gguf
    )
    backend = LlamaCppBackend(path, ModelSettings(n_ctx=1024), name="tiny-thinking")
    yield backend
    backend.close()


def reply(backend, messages, **params) -> tuple[str, str, DoneEvent, list]:
    """(thinking, answer, done, events) of one streamed reply."""
    events = list(backend.stream_chat(messages, GenerationParams(**params)))
    done = events[-1]
    assert isinstance(done, DoneEvent) and not any(isinstance(e, DoneEvent) for e in events[:-1])
    thinking = "".join(e.text for e in events if isinstance(e, ReasoningEvent))
    answer = "".join(e.text for e in events if isinstance(e, TokenEvent))
    return thinking, answer, done, events


def test_thinking_streams_apart_from_the_answer(thinking_backend) -> None:
    thinking, answer, done, events = reply(thinking_backend, CHAT, seed=1)
    assert thinking == THINKING_REASONING and answer == THINKING_ANSWER
    kinds = [type(e) for e in events[:-1]]
    assert kinds == sorted(kinds, key=lambda k: k is TokenEvent)  # all thinking comes first
    assert not any("<think>" in e.text or "</think>" in e.text for e in events[:-1])
    stats = done.stats
    assert done.finish_reason == "stop"
    # <think> + 5 thinking tokens + </think>, then "Hello" "!"
    assert stats.reasoning_tokens == 7 and stats.completion_tokens == 9
    assert 0 < stats.reasoning_s <= stats.total_s


def test_the_template_switch_turns_thinking_off(thinking_backend) -> None:
    support = thinking_backend.thinking
    assert support.thinks and support.switch == "enable_thinking" and support.default_on
    off = GenerationParams(thinking="off")
    prompt = thinking_backend.format_chat(CHAT, off)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert thinking_backend.count_chat_tokens(CHAT, off) > thinking_backend.count_chat_tokens(CHAT)
    thinking, answer, done, _ = reply(thinking_backend, CHAT, thinking="off")
    assert thinking == "" and answer == THINKING_ANSWER
    assert done.stats.reasoning_tokens == 0 and done.stats.reasoning_s == 0.0
    assert done.stats.prompt_tokens == thinking_backend.count_chat_tokens(CHAT, off)
    on = thinking_backend.format_chat(CHAT, GenerationParams(thinking="on"))
    assert on == thinking_backend.format_chat(CHAT) != prompt


def test_a_grammar_applies_to_the_answer_only(thinking_backend) -> None:
    grammar = 'root ::= "yes" | "no"'
    # Thinking asked for explicitly: the model thinks freely, then answers under the grammar.
    thinking, answer, done, _ = reply(
        thinking_backend, CHAT, thinking="on", grammar=grammar, temperature=1.5, seed=4
    )
    assert thinking == THINKING_REASONING
    assert answer in {"yes", "no"} and done.finish_reason == "stop"
    # Left at its default, thinking is switched off under a grammar: the answer alone.
    thinking, answer, done, _ = reply(thinking_backend, CHAT, grammar=grammar, seed=4)
    assert thinking == "" and answer in {"yes", "no"}
    schema = {
        "type": "object",
        "properties": {"sleepy": {"type": "boolean"}},
        "required": ["sleepy"],
    }
    import json

    thinking, answer, _, _ = reply(thinking_backend, CHAT, thinking="on", json_schema=schema)
    assert thinking == THINKING_REASONING and isinstance(json.loads(answer)["sleepy"], bool)


def test_stop_sequences_apply_to_the_answer_not_the_thinking(thinking_backend) -> None:
    # " lot" is in the thinking only, "!" in the answer only.
    thinking, answer, done, _ = reply(thinking_backend, CHAT, stop=[" lot", "!"])
    assert thinking == THINKING_REASONING and answer == "Hello"
    assert done.finish_reason == "stop"


def test_reasoning_effort_is_ignored_by_a_template_that_takes_none(thinking_backend) -> None:
    # Qwen3 takes no effort: it is ignored, not an error; a bad value for a template that
    # takes efforts is an error naming the choices (tests/unit/test_reasoning.py).
    assert reply(thinking_backend, CHAT, reasoning_effort="high")[1] == THINKING_ANSWER
    assert not thinking_backend.thinking.efforts


def test_history_carries_reasoning_only_where_the_template_asks(thinking_backend) -> None:
    earlier = ChatMessage("assistant", THINKING_ANSWER, reasoning=THINKING_REASONING)
    chat = [*CHAT, earlier, ChatMessage("user", "Why?")]
    prompt = thinking_backend.format_chat(chat)
    assert THINKING_REASONING not in prompt  # Qwen3 drops the thinking of earlier turns
    assert f"<|im_start|>assistant\n{THINKING_ANSWER}<|im_end|>" in prompt
    thinking, answer, _, _ = reply(thinking_backend, chat, seed=2)
    assert (thinking, answer) == (THINKING_REASONING, THINKING_ANSWER)


def test_a_think_tag_typed_by_the_user_is_plain_text(thinking_backend) -> None:
    # <think> is an added token of this vocabulary that llama.cpp matches even in plain text;
    # typed by a user it must not become the token the template writes (once, thinking off).
    ids = thinking_backend._tokenizer.user_defined
    off = GenerationParams(thinking="off")
    typed = thinking_backend.tokenize_chat([ChatMessage("user", "Is <think></think> a tag?")], off)
    plain = thinking_backend.tokenize_chat([ChatMessage("user", "Is it a tag?")], off)
    for marker in ("<think>", "</think>"):
        assert typed.count(ids[marker]) == plain.count(ids[marker]) == 1
    assert "Is <think></think> a tag?" in thinking_backend.format_chat(
        [ChatMessage("user", "Is <think></think> a tag?")], off
    )

"""The context budget keeps the system prompt and the new turn, drops the oldest exchanges."""

from __future__ import annotations

import pytest

from chatapp.context import MIN_REPLY_TOKENS, fit_to_context
from chatapp.domain import ChatMessage
from chatapp.engine.fake import FakeBackend
from chatapp.errors import ContextOverflowError


def _history(turns: int, words: int = 20) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for i in range(turns):
        out.append(ChatMessage("user", f"question {i} " + "word " * words))
        out.append(ChatMessage("assistant", f"answer {i} " + "word " * words))
    return out


def test_everything_fits_when_small() -> None:
    fake = FakeBackend(context_size=4096)
    plan = fit_to_context(
        ChatMessage("system", "sys"),
        _history(3),
        ChatMessage("user", "now"),
        count_chat_tokens=fake.count_chat_tokens,
        n_ctx=4096,
        max_tokens=256,
    )
    assert plan.dropped_messages == 0 and len(plan.messages) == 8
    assert plan.prompt_tokens == fake.count_chat_tokens(plan.messages)


def test_oldest_exchanges_dropped_system_kept() -> None:
    fake = FakeBackend(context_size=300)
    plan = fit_to_context(
        ChatMessage("system", "the system prompt"),
        _history(10),
        ChatMessage("user", "latest"),
        count_chat_tokens=fake.count_chat_tokens,
        n_ctx=300,
        max_tokens=64,
    )
    assert plan.messages[0].content == "the system prompt"
    assert plan.messages[-1].content == "latest"
    assert plan.dropped_messages > 0 and plan.dropped_messages % 2 == 0
    # Kept history is the most recent, starting with a user turn.
    assert plan.messages[1].role == "user" and "question 9" in plan.messages[-3].content
    assert plan.prompt_tokens + 64 <= 300


def test_reply_room_is_clipped_to_what_is_left() -> None:
    fake = FakeBackend()
    plan = fit_to_context(
        None,
        [],
        ChatMessage("user", "word " * 100),
        count_chat_tokens=fake.count_chat_tokens,
        n_ctx=150,
        max_tokens=1000,
    )
    assert plan.max_reply_tokens == 150 - plan.prompt_tokens


def test_prompt_that_cannot_fit_is_a_clear_error() -> None:
    fake = FakeBackend()
    with pytest.raises(ContextOverflowError, match=r"prompt too long: .* take \d+ tokens .* 100"):
        fit_to_context(
            ChatMessage("system", "s"),
            [],
            ChatMessage("user", "word " * 200),
            count_chat_tokens=fake.count_chat_tokens,
            n_ctx=100,
            max_tokens=10,
        )


def test_exactly_at_the_limit_keeps_min_reply() -> None:
    fake = FakeBackend()
    turn = ChatMessage("user", "word " * 50)
    need = fake.count_chat_tokens([turn]) + MIN_REPLY_TOKENS
    plan = fit_to_context(
        None, [], turn, count_chat_tokens=fake.count_chat_tokens, n_ctx=need, max_tokens=500
    )
    assert plan.max_reply_tokens == MIN_REPLY_TOKENS

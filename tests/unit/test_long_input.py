"""A long message is the user's text: the one budget cuts what the model reads, with the same
note a template's input gets (``chatapp run``), in the chat UI and ``ask`` alike (both send
through ChatSession); the stored message keeps all of it."""

from __future__ import annotations

import re

import pytest

from chatapp.context import TRUNCATION_MARK
from chatapp.domain import GenerationParams
from chatapp.engine.fake import FakeBackend
from chatapp.errors import ContextOverflowError
from chatapp.session import ChatSession, TemplateCall, TurnRequest, consume
from chatapp.storage import ConversationStore

NOTE = re.compile(
    r"input cut to its first (\d+) of (\d+) characters to fit the model's context \(512 tokens\)"
)


def cut_note(notes: list[str]) -> tuple[int, int]:
    found = [m for m in map(NOTE.search, notes) if m]
    assert len(found) == 1, notes
    return int(found[0].group(1)), int(found[0].group(2))


def long_text(words: int = 3000) -> str:
    return " ".join(f"line{i} of the pasted log" for i in range(words))


def test_a_message_longer_than_the_context_is_cut_with_a_note(store: ConversationStore) -> None:
    backend = FakeBackend(context_size=512)
    session = ChatSession(backend, store, system_prompt="Be brief.")
    text = long_text()
    result = consume(session.send(TurnRequest(text)))
    kept, given = cut_note(result.notes)
    assert given == len(text) and 0 < kept < given
    sent = backend.last_call.messages[-1].content
    assert sent == text[:kept].rstrip() + TRUNCATION_MARK
    assert backend.count_chat_tokens(backend.last_call.messages) <= 512
    assert result.stats.truncated_input and result.message.status == "complete"
    user, reply = store.thread(session.conversation_id)
    assert user.content == text, "the stored message is the whole text"
    assert reply.turn["plan"]["input_chars"] == [kept, given]


def test_the_note_is_the_one_a_template_run_gives(store: ConversationStore) -> None:
    """``chatapp run summarize`` and the chat cut the same text with the same words."""
    text = long_text()
    chat = consume(ChatSession(FakeBackend(context_size=512), None).send(TurnRequest(text)))
    run = consume(
        ChatSession(FakeBackend(context_size=512), None).send(
            TurnRequest(text, template=TemplateCall("summarize"), store=False)
        )
    )
    assert cut_note(chat.notes)[1] == cut_note(run.notes)[1] == len(text)


def test_the_next_turn_leaves_the_long_message_out_not_the_new_one(
    store: ConversationStore,
) -> None:
    backend = FakeBackend(context_size=512)
    session = ChatSession(backend, store, params=GenerationParams(max_tokens=32))
    consume(session.send(TurnRequest(long_text())))
    result = consume(session.send(TurnRequest("and now a short question?")))
    assert backend.last_call.messages[-1].content == "and now a short question?"
    assert result.stats.dropped_messages == 2 and not result.stats.truncated_input


def test_a_system_prompt_that_cannot_fit_is_still_refused(store: ConversationStore) -> None:
    session = ChatSession(FakeBackend(context_size=128), store, system_prompt="rule " * 200)
    with pytest.raises(ContextOverflowError, match="prompt too long"):
        consume(session.send(TurnRequest(long_text())))
    assert store.list_conversations() == []

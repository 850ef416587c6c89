"""ChatSession: one place from TurnRequest to stored reply — budget, templates, branches,
interruptions, durable streaming and what is recorded with each reply."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chatapp.domain import CancelToken, GenerationParams, TokenEvent
from chatapp.engine.fake import FakeBackend
from chatapp.errors import ContextOverflowError, NotFoundError, TemplateError, UsageError
from chatapp.session import (
    ChatSession,
    TemplateCall,
    TurnFinished,
    TurnRequest,
    TurnResult,
    TurnStarted,
    consume,
)
from chatapp.storage import ConversationStore


def _run(events) -> TurnResult:
    return consume(events)


def test_send_stores_both_turns_with_metadata(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue("Hello there!")
    session = ChatSession(
        fake, store, system_prompt="be kind", params=GenerationParams(temperature=0.1, seed=5)
    )
    tokens: list[str] = []
    result = consume(session.send(TurnRequest("hi")), on_token=tokens.append)
    assert "".join(tokens) == result.text == "Hello there!"
    reply = store.get_message(result.message.id)
    assert reply.status == "complete" and reply.seed == 5 and reply.kind == "reply"
    assert reply.model["name"] == "fake-model" and reply.params["temperature"] == 0.1
    assert reply.stats["completion_tokens"] == 4
    assert reply.turn["plan"]["prompt_tokens"] == result.stats.prompt_tokens
    conv = store.get_conversation(session.conversation_id)
    assert conv.title == "hi" and conv.system_prompt == "be kind"
    sent = fake.last_call.messages
    assert [m.role for m in sent] == ["system", "user"] and sent[0].content == "be kind"


def test_history_flows_into_the_next_turn(store: ConversationStore) -> None:
    fake = FakeBackend()
    session = ChatSession(fake, store)
    _run(session.send(TurnRequest("first")))
    _run(session.send(TurnRequest("second")))
    assert [m.content for m in fake.last_call.messages] == ["first", "You said: first", "second"]


def test_seed_is_recorded_when_not_given(store: ConversationStore) -> None:
    result = _run(ChatSession(FakeBackend(), store).send(TurnRequest("hi")))
    assert isinstance(result.message.seed, int)
    assert result.message.params["seed"] == result.message.seed


def test_per_turn_overrides_beat_the_session_settings(store: ConversationStore) -> None:
    fake = FakeBackend()
    session = ChatSession(fake, store, params=GenerationParams(temperature=0.7))
    _run(session.send(TurnRequest("hi", params={"temperature": 0.0, "seed": 3})))
    assert fake.last_call.params.temperature == 0.0 and fake.last_call.params.seed == 3


def test_cancel_keeps_partial_reply_marked_interrupted(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue(["one ", "two ", "three ", "four "])
    cancel = CancelToken()
    session = ChatSession(fake, store)
    seen: list[str] = []

    def token(text: str) -> None:
        seen.append(text)
        if "".join(seen) == "one two ":
            cancel.cancel()

    result = consume(session.send(TurnRequest("go"), cancel), on_token=token)
    assert result.finish_reason == "cancelled"
    assert store.get_message(result.message.id).content == "one two "
    assert store.get_message(result.message.id).status == "interrupted"


def test_closing_the_stream_early_saves_partial(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue(["a", "b", "c", "d"])
    session = ChatSession(fake, store)
    stream = session.send(TurnRequest("go"))
    for event in stream:
        if isinstance(event, TokenEvent) and event.text == "b":
            break
    stream.close()
    last = store.thread(session.conversation_id)[-1]
    assert last.role == "assistant" and last.content == "ab" and last.status == "interrupted"


def test_regenerate_makes_a_sibling(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue("first answer")
    fake.enqueue("second answer")
    session = ChatSession(fake, store)
    one = _run(session.send(TurnRequest("q")))
    two = _run(session.regenerate())
    assert two.message.parent_id == one.message.parent_id
    assert store.get_message(one.message.id).content == "first answer"
    assert [m.content for m in session.thread()] == ["q", "second answer"]


def test_edit_branches_from_the_original_parent(store: ConversationStore) -> None:
    session = ChatSession(FakeBackend(), store)
    _run(session.send(TurnRequest("one")))
    second = _run(session.send(TurnRequest("two")))
    user_two = store.get_message(second.message.parent_id)
    _run(session.edit(user_two.id, "two, edited"))
    assert [m.content for m in session.thread()][-2:] == ["two, edited", "You said: two, edited"]
    assert len(store.siblings(user_two.id)) == 2


def _sentiment_request(text: str) -> TurnRequest:
    return TurnRequest(text, template=TemplateCall("sentiment", {}, shots=2))


def test_template_turn_is_stored_with_its_request_and_parsed(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue("positive")
    session = ChatSession(fake, store, system_prompt="ignored for templates with their own")
    result = _run(session.send(_sentiment_request("What a lovely film")))
    assert result.parsed is not None and result.parsed.value == "positive" and result.constrained
    sent = fake.last_call.messages
    assert sent[0].role == "system" and "sentiment" in sent[0].content
    assert len(sent) == 1 + 2 * 2 + 1 and "What a lovely film" in sent[-1].content
    user = result.user_message
    assert user.content == "What a lovely film" and user.template == "sentiment"
    assert user.turn["request"]["template"] == {"name": "sentiment", "variables": {}, "shots": 2}
    assert fake.last_call.params.grammar  # the output constraint reached the backend


def test_regenerate_and_edit_a_template_turn_after_a_restart(tmp_path: Path) -> None:
    """The template and its variables come back from the store, not from memory."""
    path = tmp_path / "chat.db"
    fake = FakeBackend()
    with ConversationStore(path) as first:
        session = ChatSession(fake, first)
        request = TurnRequest(
            "Das Wetter ist schön.", template=TemplateCall("translate", {"target": "Korean"})
        )
        _run(session.send(request))
        conversation_id = session.conversation_id
    sent_first = fake.last_call.messages
    with ConversationStore(path) as second:
        again = ChatSession(fake, second, conversation_id=conversation_id)
        regenerated = _run(again.regenerate())
        assert fake.last_call.messages == sent_first
        assert regenerated.message.turn["request"]["template"]["variables"] == {"target": "Korean"}
        user = second.thread(conversation_id)[0]
        _run(again.edit(user.id, "Es regnet."))
        edited = fake.last_call.messages
        assert "Korean" in edited[-1].content and "Es regnet." in edited[-1].content


def test_unknown_template_and_bad_variable_are_clear(store: ConversationStore) -> None:
    session = ChatSession(FakeBackend(), store)
    with pytest.raises(NotFoundError, match="template 'nope'"):
        _run(session.send(TurnRequest("x", template=TemplateCall("nope"))))
    with pytest.raises(TemplateError, match="length"):
        request = TurnRequest("x", template=TemplateCall("summarize", {"length": "huge"}))
        _run(session.send(request))
    assert store.list_conversations() == []


def test_budget_drops_old_turns_and_reports_it(store: ConversationStore) -> None:
    fake = FakeBackend(context_size=200)
    session = ChatSession(fake, store, system_prompt="sys", params=GenerationParams(max_tokens=32))
    for i in range(12):
        _run(session.send(TurnRequest(f"message number {i} " + "pad " * 10)))
    started = next(e for e in session.send(TurnRequest("final")) if isinstance(e, TurnStarted))
    assert started.plan.dropped_messages > 0
    assert any("earlier messages left out" in note for note in started.notes)
    assert fake.calls[-1].messages[0].content == "sys"


def test_an_overlong_first_prompt_leaves_no_conversation_behind(store: ConversationStore) -> None:
    # A long message is cut to fit (tests/unit/test_long_input.py); what cannot fit even with
    # the message cut to nothing is the system prompt.
    session = ChatSession(FakeBackend(context_size=64), store, system_prompt="rule " * 100)
    with pytest.raises(ContextOverflowError):
        list(session.send(TurnRequest("word " * 500)))
    assert store.list_conversations() == [] and session.conversation_id is None


def test_empty_prompt_is_refused(store: ConversationStore) -> None:
    with pytest.raises(UsageError, match="empty prompt"):
        list(ChatSession(FakeBackend(), store).send(TurnRequest("   \n")))


def test_a_request_not_to_store_writes_nothing(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue("negative")
    session = ChatSession(fake, None)
    request = TurnRequest("Awful", template=TemplateCall("sentiment"), store=False)
    result = _run(session.send(request))
    assert result.message is None and result.parsed.value == "negative"
    session_with_store = ChatSession(FakeBackend(), store)
    _run(session_with_store.send(TurnRequest("hi", store=False)))
    assert store.list_conversations() == []


def test_backend_factory_is_called_lazily(store: ConversationStore) -> None:
    made: list[FakeBackend] = []

    def factory() -> FakeBackend:
        made.append(FakeBackend())
        return made[-1]

    session = ChatSession(factory, store)
    assert made == []
    _run(session.send(TurnRequest("hi")))
    assert len(made) == 1


# -- durable streaming ---------------------------------------------------------------------


def test_the_reply_is_in_the_store_while_it_streams(tmp_path: Path) -> None:
    """Another connection (another process) sees the reply row from the start, status
    streaming, its text growing about every half second, then complete."""
    path = tmp_path / "chat.db"
    fake = FakeBackend(token_delay_s=0.02)
    fake.enqueue([f"w{i} " for i in range(80)])
    with ConversationStore(path) as store, ConversationStore(path) as reader:
        session = ChatSession(fake, store)
        seen: list[tuple[str, int]] = []
        reply_id = None
        for event in session.send(TurnRequest("tell me")):
            if isinstance(event, TurnStarted):
                continue
            if isinstance(event, TokenEvent):
                if reply_id is None:
                    reply_id = reader.thread(session.conversation_id)[-1].id
                row = reader.get_message(reply_id)
                seen.append((row.status, len(row.content)))
            if isinstance(event, TurnFinished):
                final = reader.get_message(event.result.message.id)
        assert {status for status, _ in seen} == {"streaming"}
        lengths = [n for _, n in seen]
        assert lengths[0] == 0 and 0 < lengths[-1] < len(final.content)
        # Saved in a few batches, not per token.
        assert 1 <= len(set(lengths)) - 1 <= 6
        assert final.status == "complete" and final.content.startswith("w0 w1")


def test_a_reply_left_streaming_by_a_dead_process_becomes_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with ConversationStore(path) as store:
        conversation = store.create_conversation("crash")
        user = store.add_message(conversation.id, "user", "go")
        dead = store.add_message(
            conversation.id, "assistant", "", parent_id=user.id, status="streaming"
        )
        store.save_streamed_text(dead.id, "half a reply")
        # A process that is gone: this host, a pid whose start time is not the recorded one.
        gone = f"{socket.gethostname()}:1:0.00"
        store._conn.query("UPDATE messages SET stream_owner = ? WHERE id = ?", (gone, dead.id))
        live = store.add_message(
            conversation.id, "assistant", "", parent_id=user.id, status="streaming"
        )
    with ConversationStore(path) as reopened:
        assert reopened.recovered == 1
        recovered = reopened.get_message(dead.id)
        assert recovered.status == "interrupted" and recovered.content == "half a reply"
        # Still owned by this (live) process: left alone.
        assert reopened.get_message(live.id).status == "streaming"


def test_reasoning_streams_apart_and_is_saved_while_it_grows(tmp_path: Path) -> None:
    """A thinking model's reasoning is stored in its own field, saved as it streams like the
    answer, and never part of the answer or of the next turn's history."""
    from chatapp.domain import ReasoningEvent

    path = tmp_path / "chat.db"
    fake = FakeBackend(thinks=True, token_delay_s=0.02)
    fake.enqueue("The answer is four.", reasoning=" ".join(["two plus two"] * 20))
    with ConversationStore(path) as store, ConversationStore(path) as reader:
        session = ChatSession(fake, store)
        saved_mid_thought = ""
        for event in session.send(TurnRequest("2+2?")):
            if isinstance(event, ReasoningEvent) and not saved_mid_thought:
                row = reader.thread(session.conversation_id)[-1]
                if row.status == "streaming" and row.reasoning:
                    saved_mid_thought = row.reasoning
            if isinstance(event, TurnFinished):
                result = event.result
        assert saved_mid_thought.startswith("two plus two")
        stored = reader.get_message(result.message.id)
        assert stored.content == "The answer is four." == result.text
        assert stored.reasoning == result.reasoning and "two plus two" in stored.reasoning
        _run(session.send(TurnRequest("and 3+3?")))
        history = fake.last_call.messages
        assert [m.content for m in history[-3:]] == ["2+2?", "The answer is four.", "and 3+3?"]
        assert all(m.reasoning is None for m in history)

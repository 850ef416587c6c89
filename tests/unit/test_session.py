"""ChatSession: one place from user turn to stored reply, with branches and interruptions."""

from __future__ import annotations

import pytest

from chatapp.domain import CancelToken, GenerationParams, TokenEvent
from chatapp.engine.fake import FakeBackend
from chatapp.errors import ContextOverflowError, UsageError
from chatapp.session import ChatSession, TurnFinished, TurnOptions, TurnStarted
from chatapp.storage import ConversationStore


def _drain(events) -> tuple[str, TurnFinished]:
    text, done = "", None
    for e in events:
        if isinstance(e, TokenEvent):
            text += e.text
        elif isinstance(e, TurnFinished):
            done = e
    assert done is not None
    return text, done


def test_send_stores_both_turns_with_metadata(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue("Hello there!")
    session = ChatSession(
        fake, store, system_prompt="be kind", params=GenerationParams(temperature=0.1, seed=5)
    )
    text, done = _drain(session.send("hi", TurnOptions(template="chat")))
    assert text == "Hello there!"
    reply = store.get_message(done.message.id)
    assert reply.status == "complete" and reply.seed == 5 and reply.template == "chat"
    assert reply.model["name"] == "fake-model" and reply.params["temperature"] == 0.1
    assert reply.stats["completion_tokens"] == 4
    conv = store.get_conversation(session.conversation_id)
    assert conv.title == "hi" and conv.system_prompt == "be kind"
    sent = fake.last_call.messages
    assert [m.role for m in sent] == ["system", "user"] and sent[0].content == "be kind"


def test_history_flows_into_the_next_turn(store: ConversationStore) -> None:
    fake = FakeBackend()
    session = ChatSession(fake, store)
    _drain(session.send("first"))
    _drain(session.send("second"))
    assert [m.content for m in fake.last_call.messages] == ["first", "You said: first", "second"]


def test_seed_is_recorded_when_not_given(store: ConversationStore) -> None:
    session = ChatSession(FakeBackend(), store)
    _, done = _drain(session.send("hi"))
    assert isinstance(done.message.seed, int)
    assert done.message.params["seed"] == done.message.seed


def test_cancel_keeps_partial_reply_marked_interrupted(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue(["one ", "two ", "three ", "four "])
    cancel = CancelToken()
    session = ChatSession(fake, store)
    seen = ""
    for event in session.send("go", cancel=cancel):
        if isinstance(event, TokenEvent):
            seen += event.text
            if seen == "one two ":
                cancel.cancel()
        if isinstance(event, TurnFinished):
            done = event
    assert done.finish_reason == "cancelled"
    assert store.get_message(done.message.id).content == "one two "
    assert store.get_message(done.message.id).status == "interrupted"


def test_closing_the_stream_early_saves_partial(store: ConversationStore) -> None:
    fake = FakeBackend()
    fake.enqueue(["a", "b", "c", "d"])
    session = ChatSession(fake, store)
    stream = session.send("go")
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
    _, one = _drain(session.send("q"))
    _, two = _drain(session.regenerate())
    assert two.message.parent_id == one.message.parent_id
    assert store.get_message(one.message.id).content == "first answer"
    assert [m.content for m in session.thread()] == ["q", "second answer"]


def test_edit_branches_from_the_original_parent(store: ConversationStore) -> None:
    fake = FakeBackend()
    session = ChatSession(fake, store)
    _drain(session.send("one"))
    _, second = _drain(session.send("two"))
    user_two = store.get_message(second.message.parent_id)
    _drain(session.edit(user_two.id, "two, edited"))
    assert [m.content for m in session.thread()][-2:] == ["two, edited", "You said: two, edited"]
    assert len(store.siblings(user_two.id)) == 2


def test_model_text_is_sent_but_history_keeps_the_question(store: ConversationStore) -> None:
    fake = FakeBackend()
    session = ChatSession(fake, store)
    sources = [{"n": 1, "path": "a.md"}]
    _, done = _drain(
        session.send("what?", TurnOptions(model_text="SOURCES...\nwhat?", sources=sources))
    )
    assert fake.last_call.messages[-1].content == "SOURCES...\nwhat?"
    assert store.thread(session.conversation_id)[0].content == "what?"
    assert store.get_message(done.message.id).sources == sources


def test_budget_drops_old_turns_and_reports_it(store: ConversationStore) -> None:
    fake = FakeBackend(context_size=200)
    session = ChatSession(fake, store, system_prompt="sys", params=GenerationParams(max_tokens=32))
    for i in range(12):
        _drain(session.send(f"message number {i} " + "pad " * 10))
    started = next(e for e in session.send("final") if isinstance(e, TurnStarted))
    assert started.plan.dropped_messages > 0
    assert fake.calls[-1].messages[0].content == "sys"


def test_prompt_too_long_stores_nothing(store: ConversationStore) -> None:
    session = ChatSession(FakeBackend(context_size=64), store)
    with pytest.raises(ContextOverflowError):
        list(session.send("word " * 500))
    assert store.list_conversations()[0].message_count == 0


def test_empty_prompt_is_refused(store: ConversationStore) -> None:
    with pytest.raises(UsageError, match="empty prompt"):
        list(ChatSession(FakeBackend(), store).send("   \n"))


def test_backend_factory_is_called_lazily(store: ConversationStore) -> None:
    made: list[FakeBackend] = []

    def factory() -> FakeBackend:
        made.append(FakeBackend())
        return made[-1]

    session = ChatSession(factory, store)
    assert made == []
    _drain(session.send("hi"))
    assert len(made) == 1

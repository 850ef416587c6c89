"""A process about to leave at once (the chat after SIGTERM/SIGHUP when its shutdown hangs)
stores every reply still being written, as interrupted, with its text so far."""

from __future__ import annotations

from chatapp.session.reply_writer import ReplyWriter, interrupt_open_replies
from chatapp.storage import ConversationStore


def open_reply(store: ConversationStore) -> ReplyWriter:
    conversation = store.create_conversation("t")
    question = store.add_message(conversation.id, "user", "q")
    return ReplyWriter(store, conversation.id, question.id)


def test_open_replies_are_stored_as_interrupted_with_their_text(store: ConversationStore) -> None:
    writer = open_reply(store)
    assert writer.message is not None
    pieces, thoughts = ["Hello", ", wor"], ["thinking"]
    writer.grow(pieces, thoughts)  # within the save interval: nothing saved yet
    assert store.get_message(writer.message.id).content == ""
    assert interrupt_open_replies() == 1
    stored = store.get_message(writer.message.id)
    assert (stored.content, stored.reasoning, stored.status) == (
        "Hello, wor",
        "thinking",
        "interrupted",
    )
    assert interrupt_open_replies() == 0, "each reply once"
    writer.finish("Hello, world", "complete")  # the worker's own end still writes its row
    assert store.get_message(writer.message.id).status == "complete"


def test_a_finished_reply_is_left_alone(store: ConversationStore) -> None:
    writer = open_reply(store)
    assert writer.message is not None
    writer.grow(["done"], [])
    writer.finish("done", "complete")
    assert interrupt_open_replies() == 0
    assert store.get_message(writer.message.id).status == "complete"

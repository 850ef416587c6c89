"""FakeBackend scripts replies with a reasoning block, like a real thinking model."""

from __future__ import annotations

from chatapp.domain import ChatMessage, DoneEvent, GenerationParams, ReasoningEvent, TokenEvent
from chatapp.engine.base import Backend
from chatapp.engine.fake import FakeBackend

CHAT = [ChatMessage("user", "2+2?")]


def stream(backend: FakeBackend, **params):
    events = list(backend.stream_chat(CHAT, GenerationParams(**params)))
    done = events[-1]
    assert isinstance(done, DoneEvent)
    thinking = "".join(e.text for e in events if isinstance(e, ReasoningEvent))
    answer = "".join(e.text for e in events if isinstance(e, TokenEvent))
    return thinking, answer, done, events


def test_a_scripted_reasoning_block_streams_before_the_answer() -> None:
    backend = FakeBackend(thinks=True)
    assert isinstance(backend, Backend) and backend.thinking.can_switch
    backend.enqueue("4.", reasoning="Two plus two is four.")
    backend.enqueue("<think>\nAdd them.\n</think>\n\nFour.")
    thinking, answer, done, events = stream(backend)
    assert (thinking, answer) == ("Two plus two is four.", "4.")
    first_answer = next(i for i, e in enumerate(events) if isinstance(e, TokenEvent))
    assert not any(isinstance(e, ReasoningEvent) for e in events[first_answer:])
    assert done.stats.reasoning_tokens == len([e for e in events if isinstance(e, ReasoningEvent)])
    assert done.stats.completion_tokens == len(events) - 1
    assert stream(backend)[:2] == ("Add them.", "Four.")


def test_thinking_off_or_a_grammar_drops_the_reasoning_and_changes_the_prompt() -> None:
    backend = FakeBackend(thinks=True)
    for params in (dict(thinking="off"), dict(grammar='root ::= "4"')):
        backend.enqueue("4", reasoning="hmm")
        thinking, answer, done, _ = stream(backend, **params)
        assert (thinking, answer, done.stats.reasoning_tokens) == ("", "4", 0)
    off = backend.format_chat(CHAT, GenerationParams(thinking="off"))
    assert off.endswith("<think>\n\n</think>\n\n") and not backend.format_chat(CHAT).endswith(
        "</think>\n\n"
    )
    assert backend.count_chat_tokens(CHAT, GenerationParams(thinking="off")) > (
        backend.count_chat_tokens(CHAT)
    )


def test_stop_sequences_and_max_tokens_count_like_a_real_backend() -> None:
    backend = FakeBackend()
    assert not backend.thinking.thinks
    backend.enqueue("four, final", reasoning="stop words in thinking: final")
    thinking, answer, _, _ = stream(backend, stop=["final"])
    assert thinking.endswith("final") and answer == "four, "  # stops apply to the answer
    backend.enqueue("four", reasoning="a b c d e f")
    thinking, answer, done, _ = stream(backend, max_tokens=3)
    assert answer == "" and done.finish_reason == "length" and done.stats.completion_tokens == 3

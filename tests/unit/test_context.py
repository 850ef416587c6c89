"""The one context budget: system prompt and turn stay; then sources best-first, few-shot
examples, history newest-first; the input is cut last; the plan says what was left out."""

from __future__ import annotations

import pytest

from chatapp.context import MIN_REPLY_TOKENS, TurnDraft, fit_to_context, plain_turn
from chatapp.domain import ChatMessage, Source
from chatapp.engine.fake import FakeBackend
from chatapp.errors import ContextOverflowError


def _history(turns: int, words: int = 20) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for i in range(turns):
        out.append(ChatMessage("user", f"question {i} " + "word " * words))
        out.append(ChatMessage("assistant", f"answer {i} " + "word " * words))
    return out


def _examples(count: int, words: int = 10) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for i in range(count):
        out.append(ChatMessage("user", f"example {i} " + "shot " * words))
        out.append(ChatMessage("assistant", f"label{i}"))
    return out


def _fit(fake: FakeBackend, system, history, draft, **kwargs):
    kwargs.setdefault("n_ctx", fake.n_ctx)
    kwargs.setdefault("max_tokens", 64)
    return fit_to_context(
        system,
        history,
        draft,
        count_chat_tokens=fake.count_chat_tokens,
        count_tokens=fake.count_tokens,
        **kwargs,
    )


def _sources(texts: list[str]) -> list[Source]:
    return [Source(text, f"doc{n}.md", n=n) for n, text in enumerate(texts, start=1)]


def _grounded_draft(question: str, sources: list[Source], source_tokens: int = 0) -> TurnDraft:
    return TurnDraft(
        render=lambda kept, input_text: "\n".join([*(s.text for s in kept), question]),
        sources=sources,
        question=question,
        source_tokens=source_tokens,
    )


def test_everything_fits_when_small() -> None:
    fake = FakeBackend(context_size=4096)
    plan = _fit(fake, ChatMessage("system", "sys"), _history(3), plain_turn("now"))
    assert plan.dropped_messages == 0 and len(plan.messages) == 8
    assert plan.prompt_tokens == fake.count_chat_tokens(plan.messages)
    assert plan.notes() == []


def test_oldest_exchanges_dropped_system_kept() -> None:
    fake = FakeBackend(context_size=300)
    plan = _fit(
        fake, ChatMessage("system", "the system prompt"), _history(10), plain_turn("latest")
    )
    assert plan.messages[0].content == "the system prompt"
    assert plan.messages[-1].content == "latest"
    assert plan.dropped_messages > 0 and plan.dropped_messages % 2 == 0
    # Kept history is the most recent, starting with a user turn.
    assert plan.messages[1].role == "user" and "question 9" in plan.messages[-3].content
    assert plan.prompt_tokens + 64 <= 300
    assert "earlier messages left out" in plan.notes()[0]


@pytest.mark.parametrize(
    ("n_ctx", "examples_kept", "history_dropped"),
    [(300, 1, 12), (420, 4, 12), (520, 4, 8), (800, 4, 0)],
)
def test_sources_come_before_examples_and_examples_before_history(
    n_ctx: int, examples_kept: int, history_dropped: int
) -> None:
    """As the context shrinks, history goes first (oldest first), then examples; the four
    sources stay throughout."""
    fake = FakeBackend(context_size=n_ctx)
    sources = _sources([f"source {i} " + "fact " * 30 for i in range(4)])
    plan = _fit(
        fake,
        ChatMessage("system", "sys"),
        _history(6),
        _grounded_draft("the question?", sources),
        examples=_examples(4),
    )
    assert plan.sources == sources and plan.dropped_sources == 0
    assert plan.shown_examples == examples_kept and plan.dropped_examples == 4 - examples_kept
    assert plan.dropped_messages == history_dropped
    assert plan.prompt_tokens <= n_ctx - 64
    if history_dropped < 12:  # what history is kept is the newest
        assert "question 5" in " ".join(m.content for m in plan.messages)


def test_lowest_ranked_sources_are_left_out_first() -> None:
    fake = FakeBackend(context_size=200)
    sources = _sources([f"source{i} " + "fact " * 40 for i in range(5)])
    plan = _fit(fake, None, [], _grounded_draft("q?", sources), max_tokens=32)
    assert plan.sources == sources[: len(plan.sources)]
    assert plan.dropped_sources == 5 - len(plan.sources) > 0
    assert "lower-ranked source" in " ".join(plan.notes())


def test_best_source_is_shortened_when_even_it_alone_does_not_fit() -> None:
    fake = FakeBackend(context_size=160)
    plan = _fit(fake, None, [], _grounded_draft("q?", _sources(["fact " * 400])), max_tokens=32)
    assert len(plan.sources) == 1 and len(plan.sources[0].text) < len("fact " * 400)
    assert plan.shortened_source and plan.prompt_tokens <= 160 - 32


def test_examples_nearest_the_turn_are_kept_first() -> None:
    fake = FakeBackend(context_size=140)
    examples = _examples(6)
    plan = _fit(fake, None, [], plain_turn("classify this"), examples=examples, max_tokens=16)
    kept = [m.content for m in plan.messages if m.role == "user"][:-1]
    assert 0 < len(kept) < 6 and kept[-1].startswith("example 5")
    assert plan.dropped_examples == 6 - plan.shown_examples


def test_input_is_cut_last_and_said() -> None:
    fake = FakeBackend(context_size=120)
    text = "word " * 400
    draft = TurnDraft(render=lambda s, i: f"Summarize: {text if i is None else i}", input_text=text)
    plan = _fit(fake, ChatMessage("system", "sys"), _history(2), draft, max_tokens=16)
    assert plan.truncated_input and plan.input_chars is not None
    kept, given = plan.input_chars
    assert 0 < kept < given == len(text)
    assert plan.messages[-1].content.endswith("[…]") and plan.dropped_messages == 4
    assert "input cut to its first" in " ".join(plan.notes())


def test_reply_room_is_clipped_to_what_is_left() -> None:
    fake = FakeBackend()
    plan = _fit(fake, None, [], plain_turn("word " * 100), n_ctx=150, max_tokens=1000)
    assert plan.max_reply_tokens == 150 - plan.prompt_tokens


def test_prompt_that_cannot_fit_is_a_clear_error() -> None:
    fake = FakeBackend()
    with pytest.raises(ContextOverflowError, match=r"prompt too long: .* take \d+ tokens .* 100"):
        _fit(fake, ChatMessage("system", "s"), [], plain_turn("word " * 200), n_ctx=100)


def test_exactly_at_the_limit_keeps_min_reply() -> None:
    fake = FakeBackend()
    turn = ChatMessage("user", "word " * 50)
    need = fake.count_chat_tokens([turn]) + MIN_REPLY_TOKENS
    plan = _fit(fake, None, [], plain_turn(turn.content), n_ctx=need, max_tokens=500)
    assert plan.max_reply_tokens == MIN_REPLY_TOKENS


def test_summary_is_what_is_stored() -> None:
    fake = FakeBackend(context_size=300)
    plan = _fit(fake, None, _history(10), plain_turn("x"))
    summary = plan.summary()
    assert summary["dropped_messages"] == plan.dropped_messages > 0
    assert summary["prompt_tokens"] == plan.prompt_tokens and summary["n_ctx"] == 300


FILLER = "This paragraph talks about something else entirely, at some length. " * 3
QUESTION = "How much sun do tomatoes need?"


def _page(answer_at: int, pieces: int = 16) -> str:
    parts = ["# Growing tomatoes", *[FILLER] * pieces]
    parts.insert(answer_at, "Tomatoes need at least eight hours of direct sun each day.")
    return "\n\n".join(parts)


def test_sources_are_cut_to_the_source_budget_around_the_answer() -> None:
    fake = FakeBackend(context_size=4096)
    sources = _sources([_page(9), _page(3)])
    plan = _fit(fake, None, [], _grounded_draft(QUESTION, sources, source_tokens=80))
    assert [s.path for s in plan.sources] == ["doc1.md", "doc2.md"]
    assert sum(fake.count_tokens(s.text) for s in plan.sources) <= 80 + 4
    assert all("eight hours" in s.text and (s.trimmed or 1) < 1 for s in plan.sources)
    assert not plan.shortened_source and plan.notes() == []


def test_a_short_context_cuts_the_best_source_to_its_answering_sentences() -> None:
    """When not even the best source fits, it is cut by the same sentence choice, so the
    answer in the middle of the page stays (cutting its end would lose it)."""
    fake = FakeBackend(context_size=200)
    sources = _sources([_page(9), _page(3)])
    plan = _fit(fake, None, [], _grounded_draft(QUESTION, sources), max_tokens=32)
    assert [s.path for s in plan.sources] == ["doc1.md"] and plan.dropped_sources == 1
    assert "eight hours" in plan.sources[0].text and plan.sources[0].text.startswith("# Growing")
    assert plan.shortened_source and plan.prompt_tokens <= 200 - 32

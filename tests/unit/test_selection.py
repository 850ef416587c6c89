"""Few-shot example selection: fixed, random (seeded), similar (by embedding, cached)."""

from __future__ import annotations

import pytest

from chatapp.embedding.embedder import HashingEmbedder
from chatapp.errors import UsageError
from chatapp.prompting import build_template_turn, get_template
from chatapp.prompting.schema import Example
from chatapp.prompting.selection import clear_cache, select_examples

POOL = [
    Example(input="the pizza was cold and soggy", output="negative"),
    Example(input="wonderful acting and a moving story", output="positive"),
    Example(input="the battery died after an hour", output="negative"),
    Example(input="friendly staff and fast delivery", output="positive"),
    Example(input="a boring film with a dull plot", output="negative"),
    Example(input="great pizza with a crispy crust", output="positive"),
]


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def embed(self, texts):
        self.calls.append(list(texts))
        return super().embed(texts)


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


def test_fixed_takes_the_first_k() -> None:
    assert select_examples(POOL, 2, "fixed") == POOL[:2]
    assert select_examples(POOL, None, "fixed") == POOL
    assert select_examples(POOL, 0, "similar") == []
    assert select_examples(POOL, 99, "fixed") == POOL


def test_random_is_reproducible_per_input_and_varies_across_inputs() -> None:
    first = select_examples(POOL, 3, "random", query="a", seed=7)
    assert first == select_examples(POOL, 3, "random", query="a", seed=7)
    assert len(first) == 3 and all(e in POOL for e in first)
    draws = {
        tuple(e.input for e in select_examples(POOL, 3, "random", query=q, seed=7))
        for q in "abcdefgh"
    }
    assert len(draws) > 1
    seeds = {
        tuple(e.input for e in select_examples(POOL, 3, "random", query="a", seed=s))
        for s in range(8)
    }
    assert len(seeds) > 1


def test_similar_picks_nearest_and_puts_the_closest_last() -> None:
    chosen = select_examples(
        POOL, 2, "similar", query="cold soggy pizza", embedder=HashingEmbedder()
    )
    assert chosen[-1] is POOL[0]
    assert POOL[5] in chosen  # the other pizza review


def test_similar_embeds_examples_once() -> None:
    embedder = CountingEmbedder()
    for query in ("pizza", "battery", "film"):
        select_examples(POOL, 2, "similar", query=query, embedder=embedder)
    example_batches = [c for c in embedder.calls if len(c) == len(POOL)]
    assert len(example_batches) == 1
    assert len(embedder.calls) == 4


def test_bad_selection_requests() -> None:
    with pytest.raises(UsageError, match="example selection 'best': unknown"):
        select_examples(POOL, 2, "best")
    with pytest.raises(UsageError, match="needs an embedder"):
        select_examples(POOL, 2, "similar", query="x")


def test_turn_uses_similar_examples_with_any_embedder() -> None:
    template = get_template("sentiment")
    turn = build_template_turn(
        template,
        {},
        "Broke after a week. Do not buy this phone.",
        shots=2,
        select="similar",
        embedder=HashingEmbedder(),
    )
    shown = [m.content for m in turn.examples if m.role == "user"]
    assert "Broke after two days. Do not buy." in shown[-1]
    fixed = build_template_turn(template, {}, "x", shots=2, select="fixed")
    assert [m.content for m in fixed.examples if m.role == "assistant"] == ["positive", "negative"]

"""Sources cut to the sentences that answer the question, within a shared token budget."""

from __future__ import annotations

from chatapp.context_sources import cut_sources, sentences
from chatapp.domain import Source
from chatapp.engine.fake import FakeBackend

COUNT = FakeBackend().count_tokens
FILLER = "This paragraph talks about something else entirely, at some length. " * 3


def source(text: str, n: int = 1) -> Source:
    return Source(text, f"doc{n}.md", f"doc{n}.md", n=n)


def test_the_answering_sentence_and_its_neighbours_are_kept_in_order() -> None:
    text = "\n\n".join(
        [
            "# add_subdirectory",
            FILLER,
            "Use EXCLUDE_FROM_ALL to keep the subdirectory's targets out of the ALL target.",
            "The option was added long ago.",
            FILLER,
            FILLER,
        ]
    )
    [kept] = cut_sources(
        "Which option keeps a subdirectory's targets out of the ALL target?",
        [source(text)],
        60,
        COUNT,
    )
    assert "EXCLUDE_FROM_ALL" in kept.text and kept.trimmed < 1
    assert COUNT(kept.text) <= 60 + 4
    assert kept.text.index("EXCLUDE_FROM_ALL") < kept.text.index("added long ago")
    assert kept.text.endswith("…") and kept.path == "doc1.md"


def test_sources_share_the_budget_best_ranked_first() -> None:
    long = "\n\n".join([FILLER] * 6 + ["Tomatoes need eight hours of sun."] + [FILLER] * 6)
    sources = [source(long, n) for n in (1, 2, 3)]
    trimmed = cut_sources("How much sun do tomatoes need?", sources, 240, COUNT)
    total = sum(COUNT(s.text) for s in trimmed)
    assert total <= 240 + 12 and all("eight hours" in s.text for s in trimmed)
    assert total < sum(COUNT(s.text) for s in sources) / 3


def test_a_short_source_stays_whole_and_zero_budget_changes_nothing() -> None:
    short = [source("Roses need pruning in early spring.")]
    assert cut_sources("When to prune roses?", short, 200, COUNT)[0] is short[0]
    long = [source(FILLER * 10)]
    assert cut_sources("anything", long, 0, COUNT) is long


def test_a_source_that_matches_nothing_keeps_its_opening() -> None:
    text = "\n\n".join(["# Heading of the page", *[FILLER] * 8])
    [kept] = cut_sources("quantum chromodynamics", [source(text)], 60, COUNT)
    assert kept.text.startswith("# Heading of the page")


def test_korean_questions_find_korean_sentences() -> None:
    text = "\n\n".join(
        [
            "# 리스트 렌더링",
            "컴포넌트를 여러 개 보여 주려면 배열의 map 메서드를 사용합니다. " * 2,
            "배열 인덱스를 key로 쓰면 항목의 순서가 바뀔 때 버그가 생길 수 있습니다.",
            "필터링된 목록은 filter 메서드로 만듭니다. " * 3,
            "스타일은 별도로 지정합니다. " * 4,
        ]
    )
    [kept] = cut_sources(
        "배열 인덱스를 key로 쓰면 어떤 문제가 생기나요?", [source(text)], 40, COUNT
    )
    assert "인덱스를 key로 쓰면" in kept.text and "스타일은" not in kept.text


def test_sentences_split_prose_lists_and_headings() -> None:
    parts = sentences("# Title\n\nOne sentence. Another one!\n- item one\n- item two\n\nLast.")
    assert parts == [
        "# Title",
        "One sentence.",
        "Another one!",
        "- item one",
        "- item two",
        "Last.",
    ]


def test_the_budget_goes_to_the_sentences_that_answer_whichever_source_holds_them() -> None:
    """Three long sources, only the last holds the answer, deep inside: its answering sentence
    and neighbours are kept, the others shrink to their headings."""
    pages = ["\n\n".join([f"# Page {n}", *[FILLER] * 10]) for n in (1, 2)]
    answer = "\n\n".join(
        ["# Watering", *[FILLER] * 7, "Water tomatoes deeply twice a week.", *[FILLER] * 3]
    )
    sources = [source(pages[0], 1), source(pages[1], 2), source(answer, 3)]
    budget = 90
    trimmed = cut_sources("How often should I water tomatoes?", sources, budget, COUNT)
    assert "twice a week" in trimmed[2].text
    for other in trimmed[:2]:
        assert other.text.startswith("# Page") and COUNT(other.text) < 12
    assert sum(COUNT(s.text) for s in trimmed) <= budget + 12

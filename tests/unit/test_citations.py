"""Citation checks: numbers that name no source, sentences their sources do not support."""

from __future__ import annotations

from chatapp.domain import Source
from chatapp.embedding.embedder import HashingEmbedder
from chatapp.retrieval.search.citations import check_answer, parse_citations, split_answer

SOURCES = [
    Source("Tomatoes need at least eight hours of direct sun each day.", "tomatoes.md", n=1),
    Source("Prune roses in late winter, just before the buds swell.", "roses.md", n=2),
]


def test_parse_citations_forms() -> None:
    assert parse_citations("a [1] b [2, 3] c [4-6] d [7][8]") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert parse_citations("no citations, [x] or [ ]") == []


def test_split_answer_attaches_trailing_citations() -> None:
    pieces = split_answer("Tomatoes love sun. [1]\nRoses are pruned in winter [2].")
    assert pieces == [("Tomatoes love sun.", [1]), ("Roses are pruned in winter.", [2])]


def test_supported_answer_has_no_flags() -> None:
    answer = (
        "Tomatoes need eight hours of direct sun each day [1]. "
        "Prune roses in late winter before the buds swell [2]."
    )
    report = check_answer(answer, SOURCES, HashingEmbedder())
    assert report.citations == [1, 2]
    assert report.invalid_citations == [] and report.unsupported == []
    assert all(s.supported and s.cited for s in report.sentences)


def test_invalid_citation_and_unsupported_sentence_are_reported() -> None:
    answer = (
        "Tomatoes need eight hours of direct sun each day [1]. "
        "The moon landing happened in 1969 with three astronauts [2]. "
        "Bread rises because yeast produces carbon dioxide [5]."
    )
    report = check_answer(answer, SOURCES, HashingEmbedder())
    assert report.citations == [1, 2]
    assert report.invalid_citations == [5]
    flagged = {u["text"].split()[0]: u["reason"] for u in report.unsupported}
    assert flagged["The"] in ("not similar to its sources", "number 1969 is not in its sources")
    assert flagged["Bread"] == "cites no given source"
    assert "Tomatoes" not in flagged


def test_uncited_claims_are_scored_against_all_sources() -> None:
    report = check_answer(
        "Roses should be pruned in late winter. Sure!", SOURCES, HashingEmbedder()
    )
    assert len(report.sentences) == 1  # "Sure!" makes no claim
    assert report.sentences[0].cited is False and report.sentences[0].supported


def test_no_sources_means_every_claim_is_unsupported() -> None:
    report = check_answer("Paris is the capital of France.", [], HashingEmbedder())
    assert report.unsupported and report.unsupported[0]["support"] == 0.0


def test_invented_specifics_fail_even_when_the_topic_matches() -> None:
    answer = (
        "Tomatoes need at least eight hours of direct sun each day [1]. "
        "Tomatoes need at least 12 hours of direct sun each day [1]. "
        "Tomatoes need fertilizer called GrowMax every morning before breakfast [1]."
    )
    report = check_answer(answer, SOURCES, HashingEmbedder(), threshold=0.0)
    reasons = [s.reason for s in report.sentences]
    assert reasons[0] == ""
    assert reasons[1] == "number 12 is not in its sources"
    assert reasons[2] == "most of its words are not in its sources"
    assert report.sentences[2].coverage < 0.5

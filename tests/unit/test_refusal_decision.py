"""The refusal decision from evidence (chatapp.retrieval.search.evidence): each rule, and keyword
coverage that means the same in a six-chunk folder and a two-thousand-chunk one."""

from __future__ import annotations

import pytest

from chatapp.domain import Evidence
from chatapp.retrieval.search.evidence import Calibration, decide, keyword_evidence
from chatapp.retrieval.search.relevance import calibration
from chatapp.retrieval.store.keywords import LexicalIndex

BARS = Calibration(dense=0.38, coverage=0.6, dense_together=0.22, coverage_together=0.45)


@pytest.mark.parametrize(
    ("evidence", "answer", "by"),
    [
        (Evidence(0.45, 0.1), True, "dense"),
        (Evidence(0.09, 1.0), True, "keywords"),  # "신제품 출시일" word for word, short
        (Evidence(0.30, 0.5), True, "dense+keywords"),
        (Evidence(0.30, 0.3), False, "weak"),
        (Evidence(0.15, 0.5), False, "weak"),
        (Evidence(0.61, 0.55, ("reqwest",)), False, "missing_term"),
    ],
)
def test_each_kind_of_evidence_decides(evidence: Evidence, answer: bool, by: str) -> None:
    decision = decide(evidence, BARS)
    assert (decision.answer, decision.by) == (answer, by)
    assert decision.to_dict()["decided_by"] == by
    assert decision.to_dict()["evidence"]["coverage"] == evidence.coverage


def test_a_missing_name_does_not_refuse_where_the_calibration_says_not_to() -> None:
    english = Calibration(0.3, 0.75, 0.18, 0.45, refuse_missing=False)
    assert decide(Evidence(0.5, 0.2, ("pandas",)), english).by == "dense"


def _index(chunks: list[list[str]]) -> LexicalIndex:
    return LexicalIndex.from_terms([f"c{i}" for i in range(len(chunks))], chunks)


@pytest.mark.parametrize("filler", [4, 2000])
def test_coverage_is_a_share_whatever_the_collection_size(filler: int) -> None:
    chunks = [["납부", "관리비", "매월"], ["출시", "제품"]] + [["기타", "메모"]] * filler
    index = _index(chunks)
    both = keyword_evidence(index, "관리비 납부일", "ko")
    assert both.coverage == pytest.approx(1.0)
    assert both.shares[0] == pytest.approx(1.0) and both.shares[1] == 0
    # one of two rare terms held, the other held by no chunk: half
    half = keyword_evidence(index, "관리비 연체", "ko")
    assert half.coverage == pytest.approx(0.5)


def test_a_term_in_every_chunk_counts_for_little() -> None:
    index = _index([["방법", "관리비"]] + [["방법", "기타"]] * 50)
    common_only = keyword_evidence(index, "된장찌개 끓이는 방법", "ko")
    assert common_only.coverage < 0.05


def test_names_no_chunk_holds_are_missing_even_split() -> None:
    index = _index([["forward", "ref", "컴포넌트"], ["use", "effect"]])
    found = keyword_evidence(index, "forwardRef와 tokio 런타임", "ko")
    assert found.missing == ("tokio",)  # forwardRef is held as "forward" and "ref"
    assert keyword_evidence(index, "How does tokio work?", "en").missing == ()


def test_calibrations_exist_for_the_fitted_spaces_and_fall_back_elsewhere() -> None:
    assert (
        calibration("use-multilingual", "ko").dense_together
        < calibration("use-multilingual", "ko").dense
    )
    english = calibration("bundled", "en")
    assert english.dense == 0.3 and not english.refuse_missing
    other = calibration("intfloat/multilingual-e5-small", "ko")
    assert other.dense == 0.45 and other.refuse_missing

"""A file's chunks are analysed together: every sentence Kiwi sees once (chunks overlap by
sentences and repeat their heading), with the same terms as analysing each chunk alone."""

from __future__ import annotations

import pytest

from chatapp.text import korean
from chatapp.text.korean import korean_terms, korean_terms_many
from chatapp.text.terms import chunk_terms, file_terms
from tests.retrieval.test_stored_terms import RecordingKiwi

SHARED = "상태를 보존하려면 같은 위치에 렌더링하세요."
CHUNKS = [
    ("컴포넌트 > 상태", f"컴포넌트는 자신의 상태를 가집니다. {SHARED}"),
    ("컴포넌트 > 상태", f"{SHARED} key를 바꾸면 상태가 초기화됩니다."),
    ("Effect", "useEffect(() => {}, []);\nEffect는 외부 시스템과 동기화합니다!"),
    ("English only", "No Korean here at all."),
]


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> RecordingKiwi:
    recorder = RecordingKiwi(korean.kiwi())
    monkeypatch.setattr(korean, "_KIWI", recorder)
    return recorder


def test_many_texts_get_the_terms_each_gets_alone() -> None:
    texts = [f"{h}\n{t}" for h, t in CHUNKS]
    assert korean_terms_many(texts) == [korean_terms(t) for t in texts]
    assert file_terms("state.md", CHUNKS) == [chunk_terms("state.md", h, t) for h, t in CHUNKS]
    assert file_terms("state.md", CHUNKS)[3] == [
        "state",
        "md",
        "english",
        "onli",
        "no",
        "korean",
        "here",
        "all",
    ]


def test_a_shared_sentence_is_analysed_once(recording: RecordingKiwi) -> None:
    terms = file_terms("state.md", CHUNKS)
    assert {"보존", "렌더링"} <= set(terms[0]) and {"보존", "렌더링"} <= set(terms[1])
    assert recording.texts.count(SHARED) == 1
    assert sum(t.startswith("state.md 컴포넌트 > 상태") for t in recording.texts) == 1
    assert not any("No Korean" in t or "useEffect" in t for t in recording.texts)


def test_text_without_hangul_costs_no_analysis(recording: RecordingKiwi) -> None:
    assert korean_terms_many(["plain English", "x = 1"]) == [[], []]
    assert recording.texts == []

"""Keyword search pieces: a tokenizer for English, code and Korean; BM25 saved per manifest
generation; reciprocal rank fusion."""

from __future__ import annotations

from pathlib import Path

from chatapp.retrieval.search.hybrid import fuse
from chatapp.retrieval.store.keywords import LexicalIndex
from chatapp.text.terms import tokenize


def test_tokenizer_english_stems_and_drops_stopwords() -> None:
    assert tokenize("The deleting of directories") == ["delet", "directori"]
    assert tokenize("deletion")[0] == tokenize("deleted")[0]


def test_tokenizer_keeps_identifiers_and_their_parts() -> None:
    tokens = tokenize("Use EXCLUDE_FROM_ALL or addSubdirectory")
    assert "exclude_from_all" in tokens and "exclud" in tokens and "all" in tokens
    assert "addsubdirectori" in tokens and "subdirectori" in tokens


def test_tokenizer_korean_bigrams_match_inflected_words() -> None:
    doc = set(tokenize("패키지를 설치하려면 다음 명령을 실행하세요"))
    query = tokenize("설치 방법")
    assert "설치" in doc and "설치" in query
    assert tokenize("집") == ["집"]


def test_lexical_index_ranks_and_survives_reload(tmp_path: Path) -> None:
    texts = ["tomatoes need sun", "roses need pruning in winter", "bread needs a starter"]
    index = LexicalIndex.build(["a", "b", "c"], texts)
    assert [i for i, _ in index.top("pruning roses", 3)] == ["b"]
    index.save(tmp_path / "bm25", generation=7)
    assert LexicalIndex.load(tmp_path / "bm25", generation=8) is None  # stale → rebuild
    loaded = LexicalIndex.load(tmp_path / "bm25", generation=7)
    assert loaded is not None
    assert loaded.top("starter for bread", 2)[0][0] == "c"
    assert loaded.top("zzzz unknown words", 2) == []


def test_empty_lexical_index_answers_nothing(tmp_path: Path) -> None:
    index = LexicalIndex.build([], [])
    index.save(tmp_path / "bm25", generation=1)
    loaded = LexicalIndex.load(tmp_path / "bm25", generation=1)
    assert loaded is not None and loaded.top("anything", 5) == []


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = fuse([["a", "b", "c"], ["d", "b", "e"]], k=60)
    order = [item for item, _ in fused]
    assert order[0] == "b"  # second in both beats first in one
    assert set(order) == {"a", "b", "c", "d", "e"}
    scores = dict(fused)
    assert scores["b"] == 2 / 62


def test_weighted_fusion_lets_keyword_search_lead() -> None:
    fused = fuse([["dense-top", "shared"], ["bm25-top", "shared"]], k=60, weights=[0.5, 1.0])
    order = [item for item, _ in fused]
    assert order[:2] == ["shared", "bm25-top"]
    assert order.index("bm25-top") < order.index("dense-top")

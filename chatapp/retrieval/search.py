"""Hybrid search over a collection: dense (the collection's embedder + chroma) and keyword
(BM25) rankings fused by reciprocal rank, then a relevance threshold on the dense similarity.

``score`` is the fused score scaled so 1.0 means "ranked first by both"; ``similarity`` is the
cosine similarity between the query and the chunk, which ``min_score`` thresholds (chunks below
it are not returned, so a question the documents do not answer gets no sources).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from chatapp.config import Settings
from chatapp.retrieval.collection import Collection
from chatapp.retrieval.embedder import Embedder, create_embedder
from chatapp.retrieval.lexical import LexicalIndex

Mode = Literal["hybrid", "dense", "bm25"]
RRF_K = 60
CANDIDATES = 30

DEFAULT_MIN_SCORE = {"bundled": 0.3, "fast": 0.6, "hashing": 0.1}
"""Relevance thresholds per embedder, used unless ``retrieval.min_score`` is set explicitly:
similarities are not comparable across embedders (static embeddings score unrelated text
higher), so one number cannot serve all. Chosen on benchmarks/retrieval_eval (round values that
refuse most unanswerable questions while refusing at most 1 in 50 answerable ones)."""

DENSE_WEIGHT = {"fast": 0.5}
"""How much the dense ranking counts in the fusion, per embedder (1.0 unless listed): static
embeddings rank worse than MiniLM, so their vote counts half and keyword search leads. Chosen on
benchmarks/retrieval_eval."""


def relevance_threshold(settings: Settings, embedder_setting: str) -> float:
    """The similarity a chunk needs to count as a source for this collection's embedder."""
    if "min_score" in settings.retrieval.model_fields_set:
        return settings.retrieval.min_score
    return DEFAULT_MIN_SCORE.get(embedder_setting, settings.retrieval.min_score)


@dataclass
class SearchHit:
    rank: int
    score: float
    similarity: float
    path: str
    start_line: int | None
    end_line: int | None
    page: int | None
    heading: str
    text: str
    chunk_id: str

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of one result."""
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "similarity": round(self.similarity, 4),
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "page": self.page,
            "heading": self.heading,
            "text": self.text,
        }


def load_lexical(collection: Collection) -> LexicalIndex:
    """The collection's BM25 index, rebuilt (and saved) when the manifest changed since."""
    generation = collection.manifest.generation
    index = LexicalIndex.load(collection.bm25_dir, generation)
    if index is None:
        chunks = collection.manifest.all_chunks()
        texts = [f"{os.path.basename(c.path)} {c.heading}\n{c.text}" for c in chunks]
        index = LexicalIndex.build([c.id for c in chunks], texts)
        index.save(collection.bm25_dir, generation)
    return index


def fuse(
    rankings: list[list[str]], k: int = RRF_K, weights: list[float] | None = None
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: sum of weight/(k + rank) over the rankings, best first."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Searcher:
    """Searches one collection; keeps the embedder and BM25 index loaded between queries."""

    def __init__(self, collection: Collection, embedder: Embedder | None = None) -> None:
        self.collection = collection
        self._embedder = embedder
        self._lexical: LexicalIndex | None = None
        self._lexical_generation = -1

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = create_embedder(self.collection.embedder_setting)
        return self._embedder

    @property
    def lexical(self) -> LexicalIndex:
        generation = self.collection.manifest.generation
        if self._lexical is None or generation != self._lexical_generation:
            self._lexical = load_lexical(self.collection)
            self._lexical_generation = generation
        return self._lexical

    def embed_query(self, query: str) -> np.ndarray:
        return self.embedder.embed([query])[0]

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        min_score: float | None = None,
        mode: Mode = "hybrid",
        candidates: int = CANDIDATES,
    ) -> list[SearchHit]:
        """The k best chunks for the query, best first; none below ``min_score`` similarity."""
        if not query.strip():
            return []
        pool = max(candidates, k * 3)
        vector = self.embed_query(query)
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            dense = self.collection.store.query(vector, pool)
        if mode in ("hybrid", "bm25"):
            lexical = self.lexical.top(query, pool)
        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = lexical
        else:
            weights = [DENSE_WEIGHT.get(self.collection.embedder_setting, 1.0), 1.0]
            best = sum(weights) / (RRF_K + 1)
            fused = fuse([[i for i, _ in dense], [i for i, _ in lexical]], weights=weights)
            ranked = [(i, s / best) for i, s in fused]
        similarity = dict(dense)
        missing = [i for i, _ in ranked if i not in similarity]
        if missing:
            stored = self.collection.store.embeddings(missing)
            for chunk_id, stored_vector in stored.items():
                similarity[chunk_id] = float(np.dot(stored_vector, vector))
        records = self.collection.manifest.chunks_by_id([i for i, _ in ranked])
        hits: list[SearchHit] = []
        for chunk_id, score in ranked:
            record = records.get(chunk_id)
            if record is None:  # a vector the manifest does not own (cleanup pending)
                continue
            sim = similarity.get(chunk_id, 0.0)
            if min_score is not None and sim < min_score:
                continue
            hits.append(
                SearchHit(
                    len(hits) + 1,
                    score,
                    sim,
                    record.path,
                    record.start_line,
                    record.end_line,
                    record.page,
                    record.heading,
                    record.text,
                    chunk_id,
                )
            )
            if len(hits) >= k:
                break
        return hits

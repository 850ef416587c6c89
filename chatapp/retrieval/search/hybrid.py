"""Hybrid search over a collection: dense rankings (one per embedding space: the collection's
embedder, or for an ``auto`` collection MiniLM for Latin-script chunks and USE multilingual for
Korean and other scripts) and a keyword ranking (BM25), merged (fusion.py: by normalised scores
for Korean, by weighted reciprocal rank otherwise), then a relevance decision from the evidence
of both (evidence.py).

The query's language is decided by script ratio (chatapp.text.language). It sets how much each
ranker counts (relevance.py: ``DENSE_WEIGHT``: MiniLM is close to noise on Korean, so a Korean
query leans on the multilingual space and Kiwi keywords), how they are merged (``FUSION``), the
refusal bars (``CALIBRATION``) and the similarity a chunk needs (``DEFAULT_MIN_SCORE``). ``score`` is the fused score scaled so 1.0 means "ranked first
by every ranker"; ``similarity`` is the cosine between the query and the chunk in the chunk's
space — 0 for a chunk of a space that cannot read the question's language (a code chunk
embedded by MiniLM, found by keywords for a Korean question). With ``calibrated``, whether the
documents answer at all is decided first (``evidence.decide``: the best cosine in the
question's space, the share of its content terms one chunk holds, named terms no chunk holds),
and the ``Decision`` says which evidence decided; a question that passes gets the chunks that
reach their space's bar or hold enough of its terms. Every hit reports the bar it was held to
and the query's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from chatapp.embedding.embedder import Embedder, RoutedEmbedder
from chatapp.embedding.query import embed_query as query_vector
from chatapp.retrieval.search.evidence import (
    Calibration,
    Decision,
    Evidence,
    decide,
    keyword_evidence,
)
from chatapp.retrieval.search.fusion import RRF_K, fuse, fuse_ranks, fuse_scores
from chatapp.retrieval.search.hits import SearchHit
from chatapp.retrieval.search.relevance import (
    BM25_WEIGHT,
    FUSION,
    calibration,
    default_threshold,
    dense_weight,
    explicit_min_score,
    per_language,
    relevance_threshold,
)
from chatapp.retrieval.store.collection import Collection
from chatapp.retrieval.store.keywords import LexicalIndex, load_lexical
from chatapp.retrieval.store.manifest import ChunkRecord
from chatapp.text.language import query_language

__all__ = [
    "RRF_K",
    "Decision",
    "SearchHit",
    "SearchResult",
    "Searcher",
    "explicit_min_score",
    "fuse",
    "relevance_threshold",
]

Mode = Literal["hybrid", "dense", "bm25"]
CANDIDATES = 30


@dataclass
class QueryPlan:
    """What one search decided: the query's language and the bar each space's chunks need."""

    language: str
    thresholds: dict[str, float | None]
    threshold: float | None
    """The bar of the space the query's language goes to (what a refusal reports)."""
    home: str = ""
    """The space that reads the query's language, whose best cosine is the dense evidence."""
    calibration: Calibration | None = None
    """The refusal bars (with ``calibrated`` and no ``min_score``)."""


@dataclass
class SearchResult:
    """One search: its hits, its plan and, where relevance was checked, the decision."""

    hits: list[SearchHit]
    plan: QueryPlan
    decision: Decision | None = None


class Searcher:
    """Searches one collection; keeps the embedders and BM25 index loaded between queries."""

    def __init__(self, collection: Collection, embedder: Embedder | None = None) -> None:
        self.collection = collection
        self._embedder = embedder
        self._router: RoutedEmbedder | None = None
        self._lexical: LexicalIndex | None = None
        self._lexical_generation = -1
        self._positions: dict[str, int] = {}
        self._positions_of: LexicalIndex | None = None
        self._spaces: list[str] = []
        self._spaces_generation = -1
        self._primary = ""

    @property
    def router(self) -> RoutedEmbedder:
        if self._router is None:
            embedder = self._embedder
            if embedder is None:
                # Each space's embedder loads when first asked for (a search asks for none:
                # its query vectors come from embed_query).
                self._router = RoutedEmbedder(
                    self.collection.plan, name=self.collection.embedder_setting
                )
            elif isinstance(embedder, RoutedEmbedder):
                self._router = embedder
            else:
                self._router = RoutedEmbedder.single(
                    embedder, next(iter(self.collection.plan.values()))
                )
        return self._router

    @property
    def embedder(self) -> Embedder:
        """The collection's embedder (for an ``auto`` collection, the routed one)."""
        router = self.router
        if len(router.spaces) == 1:
            return router.get(router.spaces[0])
        return router

    @property
    def lexical(self) -> LexicalIndex:
        return self._lexical_at(self.collection.manifest.generation)

    def spaces(self) -> list[str]:
        """The spaces that hold chunks (an empty collection: the plan's spaces)."""
        return self._spaces_at(self.collection.manifest.generation)

    # What a search reads about the collection is read again only after the manifest changed:
    # a search reads the generation once.
    def _lexical_at(self, generation: int) -> LexicalIndex:
        if self._lexical is None or generation != self._lexical_generation:
            self._lexical = load_lexical(self.collection)
            self._lexical_generation = generation
        return self._lexical

    def _positions_at(self, generation: int) -> dict[str, int]:
        """Chunk id → its position in the keyword index (what ``shares`` are indexed by)."""
        lexical = self._lexical_at(generation)
        if self._positions_of is not lexical:
            self._positions = {chunk_id: n for n, chunk_id in enumerate(lexical.ids)}
            self._positions_of = lexical
        return self._positions

    def _spaces_at(self, generation: int) -> list[str]:
        if generation != self._spaces_generation:
            held = list(self.collection.space_counts())
            self._spaces = held or self.router.spaces
            self._primary = self._primary or self.collection.primary_space
            self._spaces_generation = generation
        return self._spaces

    def embed_query(self, query: str, space: str | None = None) -> np.ndarray:
        """The query's vector in a space: from the space's query encoder (numpy, no torch:
        chatapp.embedding.query) unless this Searcher was given its embedder."""
        router = self.router
        space = space or router.space_for(query)
        if self._embedder is None:
            return query_vector(space, query)
        return router.get(space).embed([query])[0]

    def plan(
        self, query: str, min_score: float | None = None, calibrated: bool = False
    ) -> QueryPlan:
        """The query's language, its home space and the similarity bar per space:
        ``min_score`` for all when given; with ``calibrated`` the default of each space that
        reads the language (dense weight > 0) — chunks of a space that cannot read it (MiniLM
        for a Korean question) were found by keywords and carry no bar, the home space's
        gate vouches for them; else no bar."""
        return self._plan(query, min_score, calibrated, self.spaces())

    def _plan(
        self, query: str, min_score: float | None, calibrated: bool, spaces: list[str]
    ) -> QueryPlan:
        language = query_language(query)
        home = self.router.space_for_language(language)
        if home not in spaces:
            home = spaces[0]
        bars: dict[str, float | None] = {}
        fitted = calibration(home, language) if calibrated and min_score is None else None
        for space in spaces:
            if min_score is not None:
                bars[space] = min_score
            elif fitted is not None and space == home:
                bars[space] = fitted.dense_together
            elif calibrated and dense_weight(space, language) > 0:
                bars[space] = default_threshold(space, language)
            else:
                bars[space] = None
        threshold = fitted.dense if fitted is not None else bars.get(home)
        return QueryPlan(language, bars, threshold, home, fitted)

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        min_score: float | None = None,
        mode: Mode = "hybrid",
        candidates: int = CANDIDATES,
        calibrated: bool = False,
    ) -> list[SearchHit]:
        """The k best chunks for the query, best first (``retrieve``'s hits)."""
        return self.retrieve(
            query, k, min_score=min_score, mode=mode, candidates=candidates, calibrated=calibrated
        ).hits

    def retrieve(
        self,
        query: str,
        k: int = 5,
        *,
        min_score: float | None = None,
        mode: Mode = "hybrid",
        candidates: int = CANDIDATES,
        calibrated: bool = False,
    ) -> SearchResult:
        """The k best chunks for the query, best first. With ``min_score`` the question is
        answered when a chunk of its space reaches it, and each chunk needs it; with
        ``calibrated`` (and no ``min_score``) the evidence decides, and each chunk needs its
        space's bar or enough of the question's terms."""
        generation = self.collection.manifest.generation
        spaces = self._spaces_at(generation)
        plan = self._plan(query, min_score, calibrated, spaces)
        if not query.strip():
            return SearchResult([], plan, Decision(False, "empty") if calibrated else None)
        pool = max(candidates, k * 3)
        # A space that cannot read the question's language (MiniLM for Korean) neither ranks
        # nor gates it: the query is not embedded there, and its chunks (found by keywords)
        # report similarity 0.
        vectors = {
            space: self.embed_query(query, space)
            for space in spaces
            if space == plan.home or dense_weight(space, plan.language) > 0 or mode == "dense"
        }
        dense: dict[str, list[tuple[str, float]]] = {}
        if mode in ("hybrid", "dense"):
            for space, vector in vectors.items():
                if mode == "hybrid" and dense_weight(space, plan.language) <= 0:
                    continue  # the home space, embedded for the gate only
                dense[space] = self.collection.search_vectors(space).query(vector, pool)
        lexical = (
            self._lexical_at(generation).top(query, pool) if mode in ("hybrid", "bm25") else []
        )
        ranked = self._rank(mode, plan.language, dense, lexical)
        similarity: dict[str, float] = {}
        for ranking in dense.values():
            similarity.update(ranking)
        records: dict[str, ChunkRecord] = {}
        decision: Decision | None = None
        held: dict[str, float] = {}
        if plan.calibration is not None:
            best = self._home_best(plan, dense, ranked, records, similarity, vectors)
            found = keyword_evidence(self._lexical_at(generation), query, plan.language)
            evidence = Evidence(best, found.coverage, found.missing, found.terms)
            decision = decide(evidence, plan.calibration)
            positions = self._positions_at(generation)
            held = {i: float(found.shares[positions[i]]) for i, _ in ranked if i in positions}
        elif plan.threshold is not None:
            best = self._home_best(plan, dense, ranked, records, similarity, vectors)
            decision = Decision(best >= plan.threshold, "min_score", Evidence(best, 0.0))
        if decision is not None and not decision.answer:
            return SearchResult([], plan, decision)
        enough_terms = plan.calibration.coverage_together if plan.calibration else 2.0
        primary = self._primary or self.collection.primary_space
        hits: list[SearchHit] = []
        # Chunks are read (and their similarity completed) a window at a time, best first:
        # the k hits are nearly always among the first few, whatever the pool's size.
        window = max(2 * k, 10)
        for start in range(0, len(ranked), window):
            part = ranked[start : start + window]
            self._complete([i for i, _ in part], records, similarity, vectors)
            for chunk_id, score in part:
                record = records.get(chunk_id)
                if record is None:  # a vector the manifest does not own (cleanup pending)
                    continue
                space = record.space or primary
                sim = similarity.get(chunk_id, 0.0)
                bar = plan.thresholds.get(space)
                if bar is not None and sim < bar and held.get(chunk_id, 0.0) < enough_terms:
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
                        space,
                        plan.language,
                        bar,
                    )
                )
                if len(hits) >= k:
                    return SearchResult(hits, plan, decision)
        return SearchResult(hits, plan, decision)

    def _home_best(
        self,
        plan: QueryPlan,
        dense: dict[str, list[tuple[str, float]]],
        ranked: list[tuple[str, float]],
        records: dict[str, ChunkRecord],
        similarity: dict[str, float],
        vectors: dict[str, np.ndarray],
    ) -> float:
        """The best cosine of a chunk of the home space: its dense ranking's first where it
        was ranked (and reaches the bar); otherwise every ranked chunk is checked."""
        bar = plan.threshold if plan.threshold is not None else -1.0
        best = max((s for _, s in dense.get(plan.home, [])), default=-1.0)
        if best >= bar:
            return best
        self._complete([i for i, _ in ranked], records, similarity, vectors)
        primary = self._primary or self.collection.primary_space
        for chunk_id, sim in similarity.items():
            record = records.get(chunk_id)
            if record is not None and (record.space or primary) == plan.home:
                best = max(best, sim)
        return best

    def _rank(
        self,
        mode: Mode,
        language: str,
        dense: dict[str, list[tuple[str, float]]],
        lexical: list[tuple[str, float]],
    ) -> list[tuple[str, float]]:
        if mode == "bm25":
            return lexical
        if mode == "dense" and len(dense) == 1:
            return next(iter(dense.values()))
        rankings = list(dense.values())
        weights = [dense_weight(space, language) if mode == "hybrid" else 1.0 for space in dense]
        if mode == "hybrid":
            rankings.append(lexical)
            weights.append(per_language(BM25_WEIGHT, language, 1.0))
        by_scores = mode == "hybrid" and FUSION.get(language, FUSION["*"]) == "scores"
        return (fuse_scores if by_scores else fuse_ranks)(rankings, weights)

    def _complete(
        self,
        ids: list[str],
        records: dict[str, ChunkRecord],
        similarity: dict[str, float],
        vectors: dict[str, np.ndarray],
    ) -> None:
        """Read the chunks' records and add the cosine of the query and each chunk in its own
        space where the dense rankings did not give it (chunks found by keywords only)."""
        unread = [i for i in ids if i not in records]
        if unread:
            records.update(self.collection.manifest.chunks_by_id(unread))
        primary = self._primary or self.collection.primary_space
        missing: dict[str, list[str]] = {}
        for chunk_id in ids:
            record = records.get(chunk_id)
            if record is not None and chunk_id not in similarity:
                missing.setdefault(record.space or primary, []).append(chunk_id)
        for space, wanted in missing.items():
            vector = vectors.get(space)
            if vector is None:  # a space that appeared since the query was embedded
                continue
            stored = self.collection.search_vectors(space).embeddings(wanted)
            for chunk_id, stored_vector in stored.items():
                if stored_vector.shape == vector.shape:
                    similarity[chunk_id] = float(np.dot(stored_vector, vector))

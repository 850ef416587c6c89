"""Sources for a grounded turn: what a collection holds that is relevant to a question.

``DocumentRetriever`` is what the session asks: it searches a collection (hybrid search with the
collection's own relevance threshold) and returns data — a ``Retrieval`` whose sources are
``Source`` values (chatapp.domain) with their location, scores and display path — never prompt
text (the words of a grounded prompt live in chatapp.prompting.grounded, the budget in
chatapp.context). It keeps one Searcher per collection, so the embedder and keyword index stay
loaded between turns; ``embedder`` hands out that loaded embedder, which ``check_answer``
(citations.py) uses to check a reply against the same sources.
"""

from __future__ import annotations

import os
import threading

from chatapp.config import Settings
from chatapp.domain import Retrieval, Source
from chatapp.embedding.embedder import Embedder
from chatapp.retrieval.search.citations import CitationReport, check_answer
from chatapp.retrieval.search.hybrid import Searcher, SearchHit, explicit_min_score
from chatapp.retrieval.store.collection import check_name, open_collection, resolve_url

__all__ = ["CitationReport", "DocumentRetriever", "Retrieval", "check_answer"]


def _display_path(path: str, roots: list[str]) -> str:
    for root in sorted(roots, key=len, reverse=True):
        base = root if os.path.isdir(root) else os.path.dirname(root)
        if path.startswith(base.rstrip(os.sep) + os.sep):
            return os.path.relpath(path, base)
    return path


class DocumentRetriever:
    """Finds sources in the user's collections; one per front end, shared across turns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._searchers: dict[str, Searcher] = {}
        self._lock = threading.Lock()

    @property
    def source_tokens(self) -> int:
        """Tokens the sources of one grounded turn may take together (0: whole chunks)."""
        return int(self.settings.retrieval.source_tokens)

    def check(self, collection: str) -> None:
        """Raise the usual one-line error for a bad or unknown collection name."""
        self._searcher(collection)

    def _searcher(self, collection: str) -> Searcher:
        with self._lock:
            searcher = self._searchers.get(collection)
            if searcher is None:
                coll = open_collection(check_name(collection), resolve_url(self.settings))
                searcher = Searcher(coll)
                self._searchers[collection] = searcher
            return searcher

    def embedder(self, collection: str) -> Embedder:
        """The collection's embedder (already loaded once the collection was searched)."""
        return self._searcher(collection).embedder

    def retrieve(self, query: str, collection: str, top_k: int | None = None) -> Retrieval:
        searcher = self._searcher(collection)
        coll = searcher.collection
        k = top_k or self.settings.retrieval.top_k
        # Thresholds per embedder and question language, unless the user set one.
        bar = explicit_min_score(self.settings)
        with self._lock:  # a Searcher is not safe for two threads at once
            result = searcher.retrieve(query, k, min_score=bar, calibrated=True)
        roots = list(coll.manifest.get_meta("roots", []))
        decision = result.decision
        return Retrieval(
            collection=coll.name,
            query=query,
            sources=[
                self._source(hit, roots, coll.name, coll.embedder_setting) for hit in result.hits
            ],
            threshold=result.plan.threshold or 0.0,
            embedder=coll.embedder_setting,
            top_k=k,
            language=result.plan.language,
            decided_by=decision.by if decision else "",
            evidence=decision.evidence if decision else None,
        )

    @staticmethod
    def _source(hit: SearchHit, roots: list[str], collection: str, embedder: str) -> Source:
        # Stored with the reply, so its citations can be checked again with the same embedder.
        return Source(
            text=hit.text,
            path=hit.path,
            display_path=_display_path(hit.path, roots),
            start_line=hit.start_line,
            end_line=hit.end_line,
            page=hit.page,
            heading=hit.heading,
            rank=hit.rank,
            score=round(hit.score, 4),
            similarity=round(hit.similarity, 4),
            threshold=hit.threshold,
            language=hit.language,
            space=hit.space,
            collection=collection,
            embedder=embedder,
        )

    def close(self) -> None:
        with self._lock:
            for searcher in self._searchers.values():
                searcher.collection.close()
            self._searchers.clear()

"""Sources for a grounded turn: what a collection holds that is relevant to a question.

``DocumentRetriever`` is what the session asks: it searches a collection (hybrid search with the
collection's own relevance threshold) and returns data — the relevant chunks as source dicts
with their location, scores and display path, the threshold used and the embedder — never
prompt text (the words of a grounded prompt live in chatapp.prompting.grounded, the budget in
chatapp.context). It keeps one Searcher per collection, so the embedder and keyword index stay
loaded between turns. ``check_answer`` (citations.py) checks a reply against the same sources.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from chatapp.config import Settings
from chatapp.embedding.embedder import Embedder
from chatapp.retrieval.search.citations import CitationReport, check_answer
from chatapp.retrieval.search.hybrid import Searcher, SearchHit, explicit_min_score
from chatapp.retrieval.store.collection import check_name, open_collection, resolve_url

__all__ = ["CitationReport", "DocumentRetriever", "Retrieval", "check_answer"]


@dataclass
class Retrieval:
    """The outcome of one search for a turn. No sources means the documents don't answer it."""

    collection: str
    query: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    """Relevant chunks, best first: ``text``, ``path``, ``display_path``, lines/page, ``score``
    (fused rank score), ``similarity`` (cosine to the question), ``collection``, ``embedder``."""
    threshold: float = 0.0
    """The similarity a chunk needed to count as a source."""
    embedder: str = ""
    top_k: int = 0
    language: str = ""
    """The question's language as retrieval decided it (``ko``, ``en``, …)."""

    source_tokens: int = 0
    """The budget the sources were cut to (0: whole chunks)."""

    def settings_summary(self) -> dict[str, Any]:
        """What is stored with the reply: how the sources were chosen."""
        return {
            "collection": self.collection,
            "embedder": self.embedder,
            "top_k": self.top_k,
            "threshold": self.threshold,
            "language": self.language,
            "found": len(self.sources),
            "source_tokens": self.source_tokens,
            "best_similarity": max((s["similarity"] for s in self.sources), default=None),
        }


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
            hits = searcher.search(query, k, min_score=bar, calibrated=True)
            plan = searcher.plan(query, bar, calibrated=True)
        roots = list(coll.manifest.get_meta("roots", []))
        return Retrieval(
            collection=coll.name,
            query=query,
            sources=[self._source(hit, roots, coll.name, coll.embedder_setting) for hit in hits],
            threshold=plan.threshold or 0.0,
            embedder=coll.embedder_setting,
            top_k=k,
            language=plan.language,
        )

    @staticmethod
    def _source(hit: SearchHit, roots: list[str], collection: str, embedder: str) -> dict[str, Any]:
        data = hit.to_dict()
        data["display_path"] = _display_path(hit.path, roots)
        # Stored with the reply, so its citations can be checked again with the same embedder.
        data["collection"] = collection
        data["embedder"] = embedder
        return data

    def close(self) -> None:
        with self._lock:
            for searcher in self._searchers.values():
                searcher.collection.close()
            self._searchers.clear()

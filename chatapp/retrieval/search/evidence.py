"""Whether the documents contain an answer, decided from what the rankers found rather than one
cosine: "said differently" and "not in my documents" look alike to a single similarity bar.

Three kinds of evidence (``chatapp.domain.Evidence``):

- ``dense``: the best cosine between the question and a chunk in the space that reads the
  question's language (USE for Korean in an ``auto`` collection, MiniLM for English).
- ``coverage``: the share of the question's content terms (Kiwi morphemes, English stems) that
  one chunk holds together, each term weighted by its rarity in this collection relative to the
  rarest possible (a term in one chunk counts 1, a term in every chunk ~0, a term the
  collection never holds 1). Being a share, it means the same in a six-note folder and a
  20k-chunk one, which raw BM25 scores (growing with the log of the collection size) do not.
- ``missing``: words in Latin script that a non-English question names (a library, a product,
  a tool) and that no chunk holds, even split at camelCase or ``_``: in a Korean question those
  name what it is about.

``decide`` turns them into an answer or a refusal with the per-language ``Calibration``
(relevance.py), and says which evidence decided. The bars were fitted on the dev sets named in
the README's retrieval table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from chatapp.domain import Evidence
from chatapp.retrieval.store.keywords import LexicalIndex
from chatapp.text.language import ENGLISH
from chatapp.text.terms import tokenize

__all__ = ["Calibration", "Decision", "Evidence", "KeywordEvidence", "decide", "keyword_evidence"]

_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")


@dataclass(frozen=True)
class Calibration:
    """The bars of one question language: answer when ``dense`` alone reaches its bar, when
    ``coverage`` alone does, or when both reach their lower ``*_together`` bars; a named term
    the collection lacks refuses (where ``refuse_missing``)."""

    dense: float
    coverage: float
    dense_together: float
    coverage_together: float
    refuse_missing: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "dense": self.dense,
            "coverage": self.coverage,
            "dense_together": self.dense_together,
            "coverage_together": self.coverage_together,
            "refuse_missing": self.refuse_missing,
        }


@dataclass(frozen=True)
class Decision:
    """Answer or refuse, and the evidence that decided: ``dense``, ``keywords``,
    ``dense+keywords`` (both weaker, together), ``missing_term`` (refused: a named term no
    chunk holds), ``weak`` (refused: nothing reached a bar), ``min_score`` (the user's own
    similarity bar decided), ``empty`` (nothing to search)."""

    answer: bool
    by: str
    evidence: Evidence | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"answer": self.answer, "decided_by": self.by}
        if self.evidence is not None:
            out["evidence"] = self.evidence.to_dict()
        return out


def decide(evidence: Evidence, bars: Calibration) -> Decision:
    """The decision for ``evidence`` under ``bars``."""
    if evidence.missing and bars.refuse_missing:
        return Decision(False, "missing_term", evidence)
    if evidence.dense >= bars.dense:
        return Decision(True, "dense", evidence)
    if evidence.coverage >= bars.coverage:
        return Decision(True, "keywords", evidence)
    if evidence.dense >= bars.dense_together and evidence.coverage >= bars.coverage_together:
        return Decision(True, "dense+keywords", evidence)
    return Decision(False, "weak", evidence)


@dataclass(frozen=True)
class KeywordEvidence:
    coverage: float
    missing: tuple[str, ...]
    terms: int
    shares: np.ndarray
    """Each chunk's share of the question's terms (by position in the keyword index)."""


def keyword_evidence(lexical: LexicalIndex, question: str, language: str) -> KeywordEvidence:
    """The keyword evidence for ``question`` in the collection's keyword index."""
    terms = list(dict.fromkeys(tokenize(question)))
    n = len(lexical.ids)
    missing = () if language == ENGLISH else _missing_names(lexical, question)
    if not terms or n == 0:
        return KeywordEvidence(0.0, missing, len(terms), np.zeros(n))
    # Rarity: BM25's idf, over the idf of a term held by one chunk (the largest an existing
    # term can have), so it lies in (0, 1] whatever the collection's size.
    rarest = math.log(1 + (n - 0.5) / 1.5)
    held = np.zeros(n)
    total = 0.0
    for term in terms:
        docs = postings(lexical, term)
        df = len(docs)
        weight = 1.0 if df == 0 else min(1.0, math.log(1 + (n - df + 0.5) / (df + 0.5)) / rarest)
        total += weight
        if df:
            held[docs] += weight
    shares = held / total
    return KeywordEvidence(min(1.0, float(shares.max())), missing, len(terms), shares)


def postings(lexical: LexicalIndex, term: str) -> np.ndarray:
    """Positions (in ``lexical.ids``) of the chunks that hold ``term``; empty when none does.
    Read from BM25's term-by-chunk score matrix (bm25s's layout, also SavedBM25's)."""
    matrix = getattr(lexical, "_retriever", None)
    index = (getattr(matrix, "vocab_dict", None) or {}).get(term)
    if index is None:
        return np.empty(0, dtype=np.int64)
    scores = matrix.scores  # type: ignore[union-attr]
    start, end = scores["indptr"][index], scores["indptr"][index + 1]
    return np.asarray(scores["indices"][start:end], dtype=np.int64)


def _missing_names(lexical: LexicalIndex, question: str) -> tuple[str, ...]:
    """Latin-script words of the question that no chunk holds, whole or in all its parts
    (``forwardRef`` is held when "forward" and "ref" are)."""
    missing = []
    for word in dict.fromkeys(_LATIN_WORD.findall(question)):
        tokens = tokenize(word)
        if not tokens or len(word) < 2:
            continue
        whole, parts = tokens[0], tokens[1:]
        if len(postings(lexical, whole)):
            continue
        if parts and all(len(postings(lexical, p)) for p in parts):
            continue
        missing.append(word)
    return tuple(missing)

"""Checking a grounded answer against its sources.

Every ``[n]`` must name a source that was given (others are reported as invalid). Each answer
sentence that makes a claim (four words or more) is scored by how well its cited sources support
it: the best cosine similarity between the sentence and the cited chunk or any sentence of it,
with the collection's embedder. A sentence without citations is scored against all sources.
Sentences below the embedder's support threshold are flagged as unsupported.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from chatapp.retrieval.embedder import Embedder

_CITATION = re.compile(r"\[\s*(\d+(?:\s*(?:[,;]|-|–)\s*\d+)*)\s*\]")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_SOURCE_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n(?=\s*[-*•]|\s*\d+\.)")
MIN_CLAIM_WORDS = 4

SUPPORT_THRESHOLDS = {"all-MiniLM-L6-v2": 0.5, "fast": 0.6}
"""Cosine below which a sentence counts as unsupported, per embedder (others: 0.45). Static
embeddings score unrelated text higher, so their bar is higher."""


@dataclass
class SentenceCheck:
    text: str
    citations: list[int]
    support: float
    supported: bool
    cited: bool


@dataclass
class CitationReport:
    citations: list[int] = field(default_factory=list)
    """Valid source numbers the answer cites, in order of first use."""
    invalid_citations: list[int] = field(default_factory=list)
    """Numbers cited that name no given source."""
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    """Sentences whose support is below the threshold: text, citations, support."""
    sentences: list[SentenceCheck] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sentences"] = [asdict(s) for s in self.sentences]
        return data


def parse_citations(text: str) -> list[int]:
    """Source numbers cited in text: ``[1]``, ``[1, 3]``, ``[2-4]``, in order, with repeats."""
    out: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            bounds = re.split(r"\s*[-–]\s*", part)
            if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
                low, high = int(bounds[0]), int(bounds[1])
                out.extend(range(low, high + 1) if 0 < high - low < 20 else [low, high])
            elif part.strip().isdigit():
                out.append(int(part))
    return out


def split_answer(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, citations) pairs; a citation standing alone after a sentence
    ("... today. [2]") belongs to that sentence."""
    pieces: list[tuple[str, list[int]]] = []
    for raw in _SENTENCE.split(answer):
        if not raw.strip():
            continue
        cites = parse_citations(raw)
        plain = " ".join(_CITATION.sub(" ", raw).split())
        if not re.search(r"\w", plain):
            if pieces:
                pieces[-1] = (pieces[-1][0], pieces[-1][1] + cites)
            continue
        pieces.append((plain, cites))
    return pieces


def _source_units(text: str) -> list[str]:
    units = [u.strip() for u in _SOURCE_SENTENCE.split(text) if u and len(u.split()) >= 3]
    return [text, *units]


def support_threshold(embedder: Embedder) -> float:
    name = getattr(embedder, "name", "")
    if name.startswith("hashing"):
        return 0.3
    return SUPPORT_THRESHOLDS.get(name, 0.45)


def check_answer(
    answer: str,
    sources: list[dict[str, Any]],
    embedder: Embedder,
    *,
    threshold: float | None = None,
) -> CitationReport:
    """Check an answer's citations and score each claim's support (see the module docstring).
    ``sources`` are the GroundedTurn sources: dicts with ``n`` and ``text``."""
    by_number = {int(s["n"]): str(s.get("text", "")) for s in sources}
    bar = support_threshold(embedder) if threshold is None else threshold
    report = CitationReport()
    for number in parse_citations(answer):
        target = report.citations if number in by_number else report.invalid_citations
        if number not in target:
            target.append(number)
    claims = [(t, c) for t, c in split_answer(answer) if len(t.split()) >= MIN_CLAIM_WORDS]
    if not claims or not by_number:
        for text, cites in claims:
            report.sentences.append(SentenceCheck(text, cites, 0.0, False, bool(cites)))
            report.unsupported.append({"text": text, "citations": cites, "support": 0.0})
        return report
    units: list[str] = []
    owner: list[int] = []
    for number, text in by_number.items():
        for unit in _source_units(text):
            units.append(unit)
            owner.append(number)
    vectors = embedder.embed([t for t, _ in claims] + units)
    claim_vectors, unit_vectors = vectors[: len(claims)], vectors[len(claims) :]
    similarity = claim_vectors @ unit_vectors.T
    owners = np.asarray(owner)
    for row, (text, cites) in enumerate(claims):
        valid = [c for c in cites if c in by_number]
        # Uncited claims are scored against every source; claims citing only sources that do
        # not exist have no support at all.
        mask = np.isin(owners, valid) if cites else np.ones(len(owners), dtype=bool)
        support = float(similarity[row][mask].max()) if mask.any() else 0.0
        supported = support >= bar
        report.sentences.append(
            SentenceCheck(text, cites, round(support, 4), supported, bool(valid))
        )
        if not supported:
            report.unsupported.append(
                {"text": text, "citations": cites, "support": round(support, 4)}
            )
    return report

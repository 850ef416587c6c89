"""Checking a grounded answer against its sources.

Every ``[n]`` must name a source that was given (others are reported as invalid). Each answer
sentence that makes a claim (``MIN_CLAIM_WORDS`` words or more; a Korean one:
``MIN_CLAIM_MORPHEMES_KO`` content morphemes, Latin words or numbers, since particles and endings
glue to its words) is checked against the sources it cites (all sources when it cites none) in
two ways, and flagged as unsupported when either fails:

- ``support``: the best cosine similarity between the sentence and the cited chunk or any
  sentence of it, with the collection's embedder. Embeddings measure topic, not truth: a wrong
  statement about the right subject still scores well, hence the second check;
- ``coverage``: the share of the sentence's content words (stemmed, as keyword search sees them)
  found in the cited sources must reach ``MIN_COVERAGE``, and every number in the sentence must
  appear there. Invented specifics (a version, a count, an option name that is not in the text)
  fail this check. Korean words are compared as Kiwi morphemes
  (``chatapp.text.terms.tokenize``), so "컴포넌트는" in an answer matches "컴포넌트의" in a source.

With a routed (``auto``) embedder the answer and its sources are embedded by the embedder of the
answer's language, together, so their vectors are comparable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from chatapp.domain import Source
from chatapp.embedding.embedder import Embedder, RoutedEmbedder
from chatapp.text.language import KOREAN, query_language

_CITATION = re.compile(r"\[\s*(\d+(?:\s*(?:[,;]|-|–)\s*\d+)*)\s*\]")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_SOURCE_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n(?=\s*[-*•]|\s*\d+\.)")
MIN_CLAIM_WORDS = 4
MIN_CLAIM_MORPHEMES_KO = 3
MIN_COVERAGE = 0.5
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")

SUPPORT_THRESHOLDS = {"all-MiniLM-L6-v2": 0.5, "fast": 0.6, "use-multilingual-v3": 0.3}
"""Cosine below which a sentence counts as unsupported, per embedder (others: 0.45). Static
embeddings score unrelated text higher, so their bar is higher. USE multilingual: between the
medians of a Korean sentence against its own chunk and against an unrelated page, measured on
benchmarks/retrieval_eval_ko."""


@dataclass
class SentenceCheck:
    text: str
    citations: list[int]
    support: float
    supported: bool
    cited: bool
    coverage: float = 1.0
    reason: str = ""


@dataclass
class CitationReport:
    citations: list[int] = field(default_factory=list)
    """Valid source numbers the answer cites, in order of first use."""
    invalid_citations: list[int] = field(default_factory=list)
    """Numbers cited that name no given source."""
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    """Sentences that fail a check: text, citations, support, coverage, reason."""
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
        plain = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(_CITATION.sub(" ", raw).split()))
        if not re.search(r"\w", plain):
            if pieces:
                pieces[-1] = (pieces[-1][0], pieces[-1][1] + cites)
            continue
        pieces.append((plain, cites))
    return pieces


def _source_units(text: str) -> list[str]:
    units = [u.strip() for u in _SOURCE_SENTENCE.split(text) if u and len(u.split()) >= 3]
    return [text, *units]


def is_claim(sentence: str) -> bool:
    """Whether a sentence says enough to be checked (see the module docstring)."""
    if query_language(sentence) == KOREAN:
        from chatapp.text.korean import korean_terms

        latin = re.findall(r"[A-Za-z0-9]+", sentence)  # names and numbers count as words too
        return len(korean_terms(sentence)) + len(latin) >= MIN_CLAIM_MORPHEMES_KO
    return len(sentence.split()) >= MIN_CLAIM_WORDS


def support_threshold(embedder: Embedder) -> float:
    name = getattr(embedder, "name", "")
    if name.startswith("hashing"):
        return 0.3
    return SUPPORT_THRESHOLDS.get(name, 0.45)


def check_answer(
    answer: str,
    sources: Sequence[Source],
    embedder: Embedder,
    *,
    threshold: float | None = None,
) -> CitationReport:
    """Check an answer's citations and score each claim's support (see the module docstring).
    ``sources`` are the turn's sources, cited by their ``n`` (their position when unnumbered)."""
    by_number = {s.n if s.n is not None else i: s.text for i, s in enumerate(sources, start=1)}
    if isinstance(embedder, RoutedEmbedder):
        embedder = embedder.embedder_for(answer)
    bar = support_threshold(embedder) if threshold is None else threshold
    report = CitationReport()
    for number in parse_citations(answer):
        target = report.citations if number in by_number else report.invalid_citations
        if number not in target:
            target.append(number)
    claims = [(t, c) for t, c in split_answer(answer) if is_claim(t)]
    if not claims or not by_number:
        for text, cites in claims:
            check = SentenceCheck(text, cites, 0.0, False, bool(cites), 0.0, "no sources")
            report.sentences.append(check)
            report.unsupported.append(_flag(check))
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
        # Uncited claims are checked against every source; claims citing only sources that do
        # not exist have no support at all.
        against = valid if cites else list(by_number)
        mask = np.isin(owners, against)
        support = float(similarity[row][mask].max()) if mask.any() else 0.0
        coverage, missing_number = _coverage(text, " ".join(by_number[n] for n in against))
        reason = ""
        if cites and not valid:
            reason = "cites no given source"
        elif support < bar:
            reason = "not similar to its sources"
        elif missing_number:
            reason = f"number {missing_number} is not in its sources"
        elif coverage < MIN_COVERAGE:
            reason = "most of its words are not in its sources"
        check = SentenceCheck(text, cites, round(support, 4), not reason, bool(valid),
                              round(coverage, 3), reason)  # fmt: skip
        report.sentences.append(check)
        if reason:
            report.unsupported.append(_flag(check))
    return report


def _flag(check: SentenceCheck) -> dict[str, Any]:
    return {
        "text": check.text,
        "citations": check.citations,
        "support": check.support,
        "coverage": check.coverage,
        "reason": check.reason,
    }


def _coverage(sentence: str, source_text: str) -> tuple[float, str | None]:
    """Share of the sentence's content words found in the source text, and the first number
    of the sentence that the source does not contain (None when all are there)."""
    from chatapp.text.terms import tokenize

    words = set(tokenize(sentence))
    available = set(tokenize(source_text))
    coverage = len(words & available) / len(words) if words else 1.0
    digits_only = re.sub(r"[,\s]", "", source_text)
    for number in _NUMBER.findall(sentence):
        if number not in source_text and number.replace(",", "") not in digits_only:
            return coverage, number
    return coverage, None

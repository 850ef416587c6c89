"""Sources cut down to the sentences that answer: less for the model to read before it answers.

A retrieved chunk is a few hundred tokens of a document, of which the answer is usually one or
two sentences. Every source keeps its opening piece (the chunk's heading or first line, so each numbered source
still says what it is); then the sentences whose keywords (the same tokens keyword search uses:
stems, identifier parts, Kiwi morphemes for Korean) best match the question's, weighted by how
rare each keyword is among the sentences of all the sources, are taken from all the sources
together, best first, each with the sentence on either side for context, until ``budget``
tokens are used. The budget goes where the answer is: on the English eval set this kept the
answer's key fact in 0.92 of the turns against 0.86 when every source had an equal share at the
same size. Each source shows what it kept in document order, with ``…`` where text was left out.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from chatapp.domain import Source
from chatapp.text.terms import tokenize

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n(?=\s*(?:[-*•#>|]|\d+\.))")


def sentences(text: str) -> list[str]:
    """The text in sentence-like pieces (sentences, list items, headings, paragraphs)."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece and piece.strip()]


def _scores(question: str, pieces: list[list[str]]) -> list[list[float]]:
    """Each sentence's match with the question: the rarity-weighted share of its keywords."""
    wanted = set(tokenize(question))
    all_sentences = [s for source in pieces for s in source]
    terms = [set(tokenize(s)) for s in all_sentences]
    frequency = Counter(t for sentence in terms for t in sentence)
    total = max(1, len(all_sentences))
    weight = {t: math.log(1 + total / frequency[t]) for t in wanted if frequency[t]}
    scores: list[list[float]] = []
    index = 0
    for source in pieces:
        row = []
        for _ in source:
            row.append(sum(weight.get(t, 0.0) for t in terms[index] & wanted))
            index += 1
        scores.append(row)
    return scores


def _select(scores: list[list[float]], costs: list[list[int]], budget: int) -> list[set[int]]:
    """The sentences to keep of each source: every source's opening first (its heading, so
    each numbered source still says what it is), then the best-matching sentences of all the
    sources together, best first, each with the sentence on either side, within ``budget``."""
    kept: list[set[int]] = [set() for _ in scores]
    used = 0
    for source, row in enumerate(costs):
        if row and used + row[0] <= budget:
            kept[source].add(0)
            used += row[0]
    ranked = sorted(
        ((score, source, i) for source, row in enumerate(scores) for i, score in enumerate(row)),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    for score, source, best in ranked:
        if score <= 0 or used >= budget:
            break
        for i in (best, best + 1, best - 1):
            row = costs[source]
            if 0 <= i < len(row) and i not in kept[source] and used + row[i] <= budget:
                kept[source].add(i)
                used += row[i]
    return kept


def trim_sources(
    question: str,
    sources: list[Source],
    budget: int,
    count_tokens: Callable[[str], int],
) -> list[Source]:
    """Copies of ``sources`` (best-ranked first) cut to their answering sentences so that all
    of them together take about ``budget`` tokens; ``budget`` 0, or sources that fit whole,
    change nothing. A trimmed source says so (``trimmed``: the share of its tokens kept)."""
    if budget <= 0 or not sources:
        return sources
    wholes = [count_tokens(s.text) for s in sources]
    if sum(wholes) <= budget:
        return sources
    pieces = [sentences(s.text) for s in sources]
    costs = [[count_tokens(p) + 1 for p in parts] for parts in pieces]
    kept = _select(_scores(question, pieces), costs, budget)
    trimmed: list[Source] = []
    for source, parts, keep, whole in zip(sources, pieces, kept, wholes, strict=True):
        if len(keep) == len(parts):
            trimmed.append(source)
            continue
        text = _join(parts, sorted(keep))
        trimmed.append(replace(source, text=text, trimmed=round(count_tokens(text) / whole, 3)))
    return trimmed


def _join(parts: list[str], kept: list[int]) -> str:
    out: list[str] = []
    previous = -1
    for i in kept:
        if out and i != previous + 1:
            out.append("…")
        out.append(parts[i])
        previous = i
    text = "\n".join(out)
    if kept and kept[0] > 0:
        text = "… " + text
    if kept and kept[-1] < len(parts) - 1:
        text += " …"
    return text

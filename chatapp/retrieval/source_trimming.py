"""Sources cut down to the sentences that answer: less for the model to read before it answers.

A retrieved chunk is a few hundred tokens of a document, of which the answer is usually one or
two sentences. Each source keeps the sentences whose keywords (the same tokens keyword search
uses: stems, identifier parts, Kiwi morphemes for Korean) best match the question's, weighted by
how rare each keyword is among the sentences of all the sources, plus the sentence on each side of
the best one for context, in document order, with ``…`` where text was left out. The sources
share ``budget`` tokens — the best-ranked first, what one leaves unused passes to the next. A
source whose sentences match nothing keeps its opening (the chunk's heading and first lines).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from chatapp.retrieval.lexical import tokenize

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n(?=\s*(?:[-*•#>|]|\d+\.))")
MIN_SHARE_TOKENS = 48
"""No source is cut below this many tokens (a heading and a sentence)."""


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


def _pick(scores: list[float], costs: list[int], budget: int) -> list[int]:
    """Indexes of the sentences to keep: best first, each with its neighbours, within budget."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: set[int] = set()
    used = 0
    for best in order:
        if scores[best] <= 0 and kept:
            break
        for i in (best, best - 1, best + 1):
            if 0 <= i < len(scores) and i not in kept and used + costs[i] <= budget:
                kept.add(i)
                used += costs[i]
        if used >= budget:
            break
    if not kept:  # nothing matches, or the best sentence alone is too long: the opening
        for i, cost in enumerate(costs):
            if used + cost > budget and kept:
                break
            kept.add(i)
            used += cost
    return sorted(kept)


def trim_sources(
    question: str,
    sources: list[dict[str, Any]],
    budget: int,
    count_tokens: Callable[[str], int],
) -> list[dict[str, Any]]:
    """Copies of ``sources`` (best-ranked first) cut to their answering sentences so that all
    of them together take about ``budget`` tokens; ``budget`` 0 keeps them whole. A trimmed
    source says so (``trimmed``: the share of its tokens kept)."""
    if budget <= 0 or not sources:
        return sources
    pieces = [sentences(s["text"]) for s in sources]
    scores = _scores(question, pieces)
    trimmed: list[dict[str, Any]] = []
    left = budget
    for number, (source, parts, row) in enumerate(zip(sources, pieces, scores, strict=True)):
        share = max(MIN_SHARE_TOKENS, left // (len(sources) - number))
        whole = count_tokens(source["text"])
        if whole <= share or len(parts) <= 1:
            trimmed.append(source)
            left -= whole
            continue
        costs = [count_tokens(p) + 1 for p in parts]
        kept = _pick(row, costs, share)
        text = _join(parts, kept)
        used = count_tokens(text)
        trimmed.append({**source, "text": text, "trimmed": round(used / whole, 3)})
        left -= used
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

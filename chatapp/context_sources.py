"""Sources cut to the room the context budget gives them: ``chatapp.context`` decides how many
tokens the sources get (``retrieval.source_tokens``, and never more than the context has left);
this decides which of their words fill them.

A retrieved chunk is a few hundred tokens of a document, of which the answer is usually one or
two sentences. Every source keeps its opening piece (its heading or first line, so each numbered
source still says what it is); then the sentences whose keywords (the tokens keyword search
uses: stems, identifier parts, Kiwi morphemes for Korean) best match the question's, weighted
by how rare each keyword is among all the sources' sentences, are taken from all the sources
together, best first, each with the sentence on either side, until the budget is used: the
budget goes where the answer is. Each source shows what it kept in document order, with ``…``
where text was left out. A source the budget does not reach is left out; when not even the
best one's opening fits, it is cut to its first characters that do.
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


def cut_sources(
    question: str,
    sources: list[Source],
    budget: int,
    count_tokens: Callable[[str], int],
) -> list[Source]:
    """``sources`` (best-ranked first) cut to their answering sentences so that their texts
    together take about ``budget`` tokens (see the module docstring); ``budget`` 0, or sources
    that fit whole, change nothing. A cut source says so (``trimmed``: the share of its tokens
    kept); sources of which nothing fits are left out."""
    if budget <= 0 or not sources:
        return sources
    wholes = [count_tokens(s.text) for s in sources]
    if sum(wholes) <= budget:
        return sources
    pieces = [sentences(s.text) for s in sources]
    costs = [[count_tokens(p) + 1 for p in parts] for parts in pieces]
    kept = _select(_scores(question, pieces), costs, budget)
    out: list[Source] = []
    for source, parts, keep, whole in zip(sources, pieces, kept, wholes, strict=True):
        if len(keep) == len(parts):
            out.append(source)
        elif keep:
            text = _join(parts, sorted(keep))
            out.append(replace(source, text=text, trimmed=_share(text, whole, count_tokens)))
    if not out:
        text = _prefix(sources[0].text, budget, count_tokens)
        if text:
            share = _share(text, wholes[0], count_tokens)
            out.append(replace(sources[0], text=text, trimmed=share))
    return out


def _share(text: str, whole: int, count_tokens: Callable[[str], int]) -> float:
    return round(count_tokens(text) / max(1, whole), 3)


def _prefix(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """The longest start of ``text`` that, marked as cut, takes at most ``budget`` tokens."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(text[:mid].rstrip() + " …") <= budget:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + " …" if text[:low].strip() else ""


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

"""Korean keywords: content morphemes from Kiwi (kiwipiepy, with its model from kiwipiepy-model).

Korean glues particles and endings to words ("컴포넌트의", "전달하려면"), so a whitespace word
rarely matches the same word elsewhere. Kiwi splits a text into morphemes with part-of-speech
tags; keyword search keeps the ones that carry content — nouns, verb and adjective stems, roots,
adverbs and Hanja — and drops particles, endings, suffixes and a few stems that occur in every
question ("하", "되", "어떻"…). Latin words, numbers and code are left to the English rules of
``terms.tokenize``, which sees the same text. Each sentence of the lines with Hangul is
analysed on its own, so the sentences a file's chunks share are analysed once
(``korean_terms_many``). Kiwi loads once per process, on first use; it is imported only here.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from chatapp.text.language import has_hangul

CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "VV", "VA", "XR", "MAG", "SH"})
"""General and proper nouns, numerals, verb and adjective stems, roots, adverbs, Hanja."""
STOP_FORMS = frozenset(
    [
        "하",
        "되",
        "있",
        "없",
        "않",
        "같",
        "이",
        "그",
        "저",
        "것",
        "수",
        "등",
        "때",
        "및",
        "더",
        "또",
        "또한",
        "어떻",
        "어떠",
        "무엇",
        "왜",
        "어디",
        "언제",
        "알리",
        "주",
        "보",
        "싶",
        "좋",
        "잘",
        "그렇",
        "이렇",
        "저렇",
    ]
)
"""Stems that occur in nearly every question or sentence ("어떻게 하나요", "알려 주세요")."""

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+(?=\S)")
_KIWI: Any = None
_LOCK = threading.Lock()


def kiwi() -> Any:
    """The process's Kiwi analyser (loaded on first use; thread-safe)."""
    global _KIWI
    with _LOCK:
        if _KIWI is None:
            from kiwipiepy import Kiwi

            # One worker: a list of texts is analysed in one call (the caller waits, so one
            # thread works at a time). The multi-word dictionary (WikiData proper nouns) is
            # left out: it was 1.7 of the 3.5 CPU seconds of loading, and the eval set's
            # recall and MRR were the same without it (benchmarks/kiwi_speed.py).
            _KIWI = Kiwi(num_workers=1, load_multi_dict=False)
        return _KIWI


def _plain_tag(tag: str) -> str:
    # Irregular conjugations carry a suffix ("VA-I", "VV-R"); the base tag is what counts.
    return tag.split("-", 1)[0]


def _sentences(text: str) -> list[str]:
    """The sentences of the lines with Hangul: code and English lines around them cost Kiwi
    time for nothing, and a sentence is the unit chunks share (their overlap) and repeat."""
    return [
        piece
        for line in text.splitlines()
        if has_hangul(line)
        for piece in _SENTENCE.split(line)
        if piece.strip()
    ]


def _content(tokens: Any) -> list[str]:
    terms: list[str] = []
    for token in tokens:
        if _plain_tag(token.tag) not in CONTENT_TAGS:
            continue
        form = token.form
        if form in STOP_FORMS or form.isascii():
            continue
        terms.append(form)
    return terms


def korean_terms_many(texts: list[str]) -> list[list[str]]:
    """``korean_terms`` of each text; a sentence that occurs in several of them (a file's
    chunks overlap by sentences and repeat their heading) is analysed once, all in one call."""
    analyser = kiwi()
    split = [_sentences(text) for text in texts]
    distinct = list(dict.fromkeys(piece for pieces in split for piece in pieces))
    if not distinct:
        return [[] for _ in texts]
    with _LOCK:  # one analysis at a time: the analyser is shared by the threads of a run
        if len(distinct) == 1:
            analysed = [analyser.tokenize(distinct[0])]
        else:
            analysed = list(analyser.tokenize(distinct))
    terms = {piece: _content(tokens) for piece, tokens in zip(distinct, analysed, strict=True)}
    return [[term for piece in pieces for term in terms[piece]] for pieces in split]


def korean_terms(text: str) -> list[str]:
    """Content morphemes of the Hangul (and Hanja) parts of ``text``, in order, sentence by
    sentence."""
    if _KIWI is None:  # not loaded here: a child may be analysing it already (cold search)
        from chatapp.text import korean_prefetch

        prefetched = korean_prefetch.take(text)
        if prefetched is not None:
            return prefetched
    return korean_terms_many([text])[0]

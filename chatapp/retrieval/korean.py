"""Korean keywords: content morphemes from Kiwi (kiwipiepy, with its model from kiwipiepy-model).

Korean glues particles and endings to words ("컴포넌트의", "전달하려면"), so a whitespace word
rarely matches the same word elsewhere. Kiwi splits a text into morphemes with part-of-speech
tags; keyword search keeps the ones that carry content — nouns, verb and adjective stems, roots,
adverbs and Hanja — and drops particles, endings, suffixes and a few stems that occur in every
question ("하", "되", "어떻"…). Latin words, numbers and code are left to the English rules of
``lexical.tokenize``, which sees the same text. Kiwi loads once per process (~1.5 s) on first
use; it is imported only here.
"""

from __future__ import annotations

import threading
from typing import Any

from chatapp.retrieval.language import has_hangul

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

_KIWI: Any = None
_LOCK = threading.Lock()


def kiwi() -> Any:
    """The process's Kiwi analyser (loaded on first use; thread-safe)."""
    global _KIWI
    with _LOCK:
        if _KIWI is None:
            from kiwipiepy import Kiwi

            _KIWI = Kiwi(num_workers=-1)  # -1: analyse in the calling thread, no worker pool
        return _KIWI


def _plain_tag(tag: str) -> str:
    # Irregular conjugations carry a suffix ("VA-I", "VV-R"); the base tag is what counts.
    return tag.split("-", 1)[0]


def korean_terms(text: str) -> list[str]:
    """Content morphemes of the Hangul (and Hanja) parts of ``text``, in order."""
    analyser = kiwi()
    # Only lines with Hangul: code and English lines around them cost Kiwi time for nothing.
    text = "\n".join(line for line in text.splitlines() if has_hangul(line))
    with _LOCK:  # one analysis at a time: the analyser is shared by the threads of a run
        tokens = analyser.tokenize(text)
    terms: list[str] = []
    for token in tokens:
        if _plain_tag(token.tag) not in CONTENT_TAGS:
            continue
        form = token.form
        if form in STOP_FORMS or form.isascii():
            continue
        terms.append(form)
    return terms

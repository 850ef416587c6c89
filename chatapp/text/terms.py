"""The terms a text is searched under by keyword (BM25): one tokenizer for English, code, Korean
and mixed text, each script by its own rule within the same text. Lowercase words, English ones
stemmed (Snowball); identifiers also split at ``_`` and camelCase (``EXCLUDE_FROM_ALL`` →
exclude_from_all, exclud, from, all); Hangul by Kiwi morphemes (``korean.korean_terms``:
"설치하려면" → 설치); runs of Han or kana become overlapping character bigrams.
``TOKENIZER_VERSION`` is saved with a keyword index, so one built by an older tokenizer is
rebuilt rather than searched with different tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from chatapp.text.language import has_hangul

TOKENIZER_VERSION = 3
"""1: character bigrams for Hangul; 2: Kiwi morphemes for Hangul; 3: Kiwi sentence by sentence,
without its multi-word dictionary."""
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3130-\u318f]+")
_TOKEN = re.compile(r"[\u4e00-\u9fff\u3040-\u30ff]+|[^\W_]+(?:_+[^\W_]+)*")
_CJK = re.compile(r"[\u4e00-\u9fff\u3040-\u30ff]")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOPWORDS_TEXT = """a an and are as at be but by for from has have how i if in into is it its of
on or that the their then there these this to was what when where which who why will with do
does can you your my me we our"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def tokenize(text: str) -> list[str]:
    """Search tokens for BM25 (see the module docstring)."""
    if has_hangul(text):
        from chatapp.text.korean import korean_terms

        return _tokens(text, korean_terms(text))
    return _tokens(text, [])


def _tokens(text: str, korean: list[str]) -> list[str]:
    """``korean`` (the text's Korean terms) and the tokens of the rest of the text."""
    tokens = list(korean)
    if korean or has_hangul(text):
        text = _HANGUL.sub(" ", text)
    for match in _TOKEN.finditer(text):
        word = match.group(0)
        if _CJK.match(word):
            if len(word) == 1:
                tokens.append(word)
            else:
                tokens.extend(word[i : i + 2] for i in range(len(word) - 1))
            continue
        lower = word.lower()
        if lower not in STOPWORDS:
            tokens.append(lower if "_" in lower else _stem(lower))
        parts = [p for p in re.split(r"_+", word) if p]
        if len(parts) == 1:
            parts = _CAMEL.findall(word)
        if len(parts) > 1:
            tokens.extend(_stem(p.lower()) for p in parts if p.lower() not in STOPWORDS)
    return tokens


def chunk_terms(file_name: str, heading: str, text: str) -> list[str]:
    """The terms a chunk is indexed under: its file name and heading path count as its text."""
    return file_terms(file_name, [(heading, text)])[0]


def file_terms(file_name: str, chunks: Sequence[tuple[str, str]]) -> list[list[str]]:
    """``chunk_terms`` of a file's chunks, given as (heading, text): Kiwi analyses the
    sentences they share once."""
    texts = [f"{file_name} {heading}\n{text}" for heading, text in chunks]
    korean: list[list[str]] = [[] for _ in texts]
    with_hangul = [i for i, text in enumerate(texts) if has_hangul(text)]
    if with_hangul:
        from chatapp.text.korean import korean_terms_many

        made = korean_terms_many([texts[i] for i in with_hangul])
        for i, terms in zip(with_hangul, made, strict=True):
            korean[i] = terms
    return [_tokens(text, terms) or ["∅"] for text, terms in zip(texts, korean, strict=True)]


_STEMMER: Any = None


def _stem(word: str) -> str:
    """English Snowball stem ("deleting", "deletion" → "delet"); other scripts pass through."""
    global _STEMMER
    if not word.isascii():
        return word
    if _STEMMER is None:
        import Stemmer  # PyStemmer: C Snowball with its own word cache

        _STEMMER = Stemmer.Stemmer("english", 100_000)
    return str(_STEMMER.stemWord(word))

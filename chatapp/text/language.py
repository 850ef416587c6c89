"""Which language a text is in, decided by the scripts of its letters.

Retrieval decides per chunk and per query (never per collection, so a mixed folder works) which
keyword rules and which embedding space suit a text. Letters are counted by script: Hangul
syllables and jamo, Han ideographs, kana, and Latin (everything else that is a letter counts as
Latin's neighbour "other"). A Hangul syllable carries about as much as a short Latin word piece,
so it weighs ``HANGUL_WEIGHT`` Latin letters; a text is Korean when its weighted Hangul share is
at least ``KOREAN_SHARE``. Code in a Korean page (mostly Latin identifiers) therefore counts as
English-like text, and a Korean question naming ``useEffect`` stays Korean.

Language codes: ``ko`` Korean, ``ja`` Japanese (kana present), ``zh`` Chinese (Han without kana),
``en`` for Latin-script and everything else (English keyword rules, the English embedder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KOREAN = "ko"
JAPANESE = "ja"
CHINESE = "zh"
ENGLISH = "en"
LANGUAGES = (ENGLISH, KOREAN, JAPANESE, CHINESE)

HANGUL_WEIGHT = 2.5
"""One Hangul syllable ≈ 2.5 Latin letters of content (Korean words are 2–4 syllables, English
ones 5–8 letters)."""
HAN_WEIGHT = 3.0
KOREAN_SHARE = 0.4
"""Weighted Hangul share above which a text is Korean; round, and far from both sides: Korean
prose scores 0.8–1.0, a Korean question about an API ~0.5–0.7, English with one Korean word < 0.2."""
QUERY_KOREAN_SHARE = 0.25
"""The share for a question: Korean particles and endings around long identifiers
("babel-plugin-react-compiler 설치와 Vite 설정 방법", 0.38) still make it a Korean question."""


@dataclass(frozen=True)
class ScriptCounts:
    hangul: int = 0
    han: int = 0
    kana: int = 0
    latin: int = 0
    other: int = 0

    @property
    def letters(self) -> int:
        return self.hangul + self.han + self.kana + self.latin + self.other


_HANGUL_RANGES = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
_KANA_RANGES = "\u3040-\u30ff\u31f0-\u31ff"
_HAN_RANGES = "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff"
_HANGUL_CHARS = re.compile(f"[{_HANGUL_RANGES}]+")
_KANA_CHARS = re.compile(f"[{_KANA_RANGES}]+")
_HAN_CHARS = re.compile(f"[{_HAN_RANGES}]+")
_ASCII_LETTERS = re.compile("[A-Za-z]+")
_OTHER_NON_ASCII = re.compile(f"[^\x00-\x7f{_HANGUL_RANGES}{_KANA_RANGES}{_HAN_RANGES}]")
_HANGUL_SYLLABLE_OR_JAMO = re.compile("[\uac00-\ud7a3\u3130-\u318f]")


def _covered(pattern: re.Pattern[str], text: str) -> int:
    """How many characters of ``text`` the (one-class, ``+``) pattern matches, at C speed."""
    return len(text) - len(pattern.sub("", text))


def count_scripts(text: str) -> ScriptCounts:
    """Letters of the text by script (digits, spaces and punctuation are not counted; every
    character of the Hangul, kana and Han blocks counts for its script). A chunk of the indexer
    is counted in a few regex passes instead of a Python step per character."""
    if text.isascii():
        return ScriptCounts(latin=_covered(_ASCII_LETTERS, text))
    latin = _covered(_ASCII_LETTERS, text)
    other = 0
    for char in _OTHER_NON_ASCII.findall(text):  # accented Latin, Cyrillic, symbols…: few
        if char.isalpha():
            code = ord(char)
            if code < 0x0250 or 0x1E00 <= code <= 0x1EFF:
                latin += 1
            else:
                other += 1
    return ScriptCounts(
        hangul=_covered(_HANGUL_CHARS, text),
        han=_covered(_HAN_CHARS, text),
        kana=_covered(_KANA_CHARS, text),
        latin=latin,
        other=other,
    )


def has_hangul(text: str) -> bool:
    """Whether the text has a Hangul syllable or compatibility jamo."""
    return _HANGUL_SYLLABLE_OR_JAMO.search(text) is not None


def detect_language(text: str, share: float = KOREAN_SHARE) -> str:
    """``ko``, ``ja``, ``zh`` or ``en`` for a chunk (for a query: ``query_language``)."""
    counts = count_scripts(text)
    if not counts.letters:
        return ENGLISH
    hangul = counts.hangul * HANGUL_WEIGHT
    han = counts.han * HAN_WEIGHT
    kana = counts.kana * HANGUL_WEIGHT
    weighted = hangul + han + kana + counts.latin + counts.other
    if hangul / weighted >= share:
        return KOREAN
    if (han + kana) / weighted >= share:
        return JAPANESE if counts.kana else CHINESE
    return ENGLISH


def query_language(text: str) -> str:
    """The language of a question (a lower bar than for chunks, see ``QUERY_KOREAN_SHARE``)."""
    return detect_language(text, QUERY_KOREAN_SHARE)


DOCUMENT_SHARE = 0.25
"""A document is Korean (Japanese…) when its prose — its text outside code blocks, which have
no language — is at least this share Korean by ``detect_language``'s weighted letters. Korean
pages of the React docs score 0.54–0.85 (however much code they hold), English pages 0; an
English page with one Korean paragraph in ten (0.12 for a paragraph said in both languages)
stays English."""


def document_language(prose: list[str]) -> str:
    """The language of a document from the texts of its prose blocks (all its blocks when it
    has none, as a source file)."""
    if all(text.isascii() for text in prose):
        return ENGLISH
    return detect_language("\n".join(prose), DOCUMENT_SHARE)

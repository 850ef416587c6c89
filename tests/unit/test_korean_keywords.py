"""Korean keywords by Kiwi morphemes, and the language of chunks, pages and queries by script
ratio."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chatapp.retrieval.ingest.loaders import parse_file
from chatapp.retrieval.ingest.markup import Block
from chatapp.retrieval.ingest.reader import page_language
from chatapp.retrieval.store.keywords import LexicalIndex
from chatapp.text.korean import korean_terms
from chatapp.text.language import (
    DOCUMENT_SHARE,
    ScriptCounts,
    count_scripts,
    detect_language,
    document_language,
    has_hangul,
    query_language,
)
from chatapp.text.terms import tokenize

KOREAN_CORPUS = Path(__file__).resolve().parents[2] / "benchmarks" / "retrieval_eval_ko" / "corpus"


def test_particles_and_endings_are_dropped_stems_kept() -> None:
    terms = korean_terms("컴포넌트의 state를 보존하려면 key를 바꾸지 마세요.")
    assert "컴포넌트" in terms and "보존" in terms
    for glue in ("의", "를", "려면", "세요", "마"):
        assert glue not in terms
    assert not any(t.isascii() for t in terms)  # Latin words are left to the English rules


def test_the_same_word_with_other_particles_gives_the_same_terms() -> None:
    assert set(korean_terms("설치하려면")) == set(korean_terms("설치를")) == {"설치"}
    assert "업데이트" in korean_terms("상태 업데이트가") and "업데이트" in korean_terms(
        "업데이트를"
    )


def test_question_words_are_not_keywords() -> None:
    terms = korean_terms("렌더링은 어떻게 해야 하나요? 알려 주세요")
    assert terms == ["렌더링"]


def test_mixed_text_gets_every_rule() -> None:
    tokens = tokenize("useEffect는 EXCLUDE_FROM_ALL 옵션을 deleting 할 때 설치하세요")
    assert {"useeffect", "use", "effect"} <= set(tokens)  # camelCase split
    assert {"exclude_from_all", "exclud", "all"} <= set(tokens)  # identifier kept and split
    assert "delet" in tokens  # English stemmed
    assert {"옵션", "설치"} <= set(tokens)  # Korean morphemes
    assert "는" not in tokens and "때" not in tokens


def test_other_cjk_keeps_bigrams() -> None:
    assert tokenize("日本語") == ["日本", "本語"]


def test_keyword_search_finds_a_korean_chunk_through_other_endings() -> None:
    texts = [
        "State를 보존하고 초기화하기: 같은 위치의 컴포넌트는 state를 유지합니다.",
        "이벤트 핸들러를 추가하려면 onClick prop에 함수를 전달합니다.",
        "배열을 렌더링할 때 각 항목에 key를 지정하세요.",
    ]
    index = LexicalIndex.build(["state", "events", "lists"], texts)
    assert index.top("컴포넌트의 state를 초기화하는 방법", 3)[0][0] == "state"
    assert index.top("클릭 이벤트 핸들러 추가", 3)[0][0] == "events"
    assert index.top("리스트를 렌더링하면서 키 지정", 3)[0][0] == "lists"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("State는 컴포넌트의 메모리입니다. 렌더링 사이에 값을 유지합니다.", "ko"),
        ("Rotate the log files every night and keep five of them.", "en"),
        ("const [count, setCount] = useState(0);\nfunction handleClick() { setCount(1); }", "en"),
        # code in a Korean page stays English-like: its words are identifiers
        (
            "export default function Gallery() {\n  // 갤러리\n  return <section>...</section>;\n}",
            "en",
        ),
        ("日本語のテキストです", "ja"),
        ("中文文本检索", "zh"),
        ("12345 --- !!!", "en"),
    ],
)
def test_chunk_language_by_script_ratio(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    ("query", "language"),
    [
        ("useEffect는 언제 쓰나요?", "ko"),
        ("babel-plugin-react-compiler 설치와 Vite 설정 방법", "ko"),
        ("default export와 named export의 차이", "ko"),
        ("How do I rotate the logs?", "en"),
        ("How do I translate the word 상태 into English in my notes?", "en"),
    ],
)
def test_query_language(query: str, language: str) -> None:
    assert query_language(query) == language


def test_script_counts() -> None:
    counts = count_scripts("React 컴포넌트 日本 かな")
    assert (counts.latin, counts.hangul, counts.han, counts.kana) == (5, 4, 2, 2)


def _scripts_one_by_one(text: str) -> ScriptCounts:
    """The definition ``count_scripts`` computes in regex passes: each character on its own."""
    counts = {"hangul": 0, "han": 0, "kana": 0, "latin": 0, "other": 0}
    for char in text:
        code = ord(char)
        if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            counts["hangul"] += 1
        elif 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF:
            counts["kana"] += 1
        elif 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
            counts["han"] += 1
        elif char.isalpha():
            latin = code < 0x0250 or 0x1E00 <= code <= 0x1EFF
            counts["latin" if latin else "other"] += 1
    return ScriptCounts(**counts)


def test_script_counts_match_counting_each_character() -> None:
    rng = random.Random(7)
    alphabet = (
        "aZ9_ -.\n\t"
        "가힣ᄀᇿㄱㆎ"  # syllables, jamo, compatibility jamo (block edges)
        "あンㇰ・"  # kana, including the middle dot of its block
        "一龥㐀鿿豈"  # Han
        "éŁɏḀỿ"  # Latin beyond ASCII
        "Жαא½²Ⅻ…·🙂\u200b\u0301"  # other scripts, numbers that are not letters, symbols
    )
    texts = ["", "plain ASCII only", "React 컴포넌트 日本 かな"]
    texts += ["".join(rng.choices(alphabet, k=rng.randint(1, 80))) for _ in range(500)]
    texts += [p.read_text(encoding="utf-8") for p in sorted(KOREAN_CORPUS.glob("*.md"))[:5]]
    for text in texts:
        assert count_scripts(text) == _scripts_one_by_one(text), text[:40]
        expected = any(0xAC00 <= ord(c) <= 0xD7A3 or 0x3130 <= ord(c) <= 0x318F for c in text)
        assert has_hangul(text) is expected


def test_a_korean_page_is_korean_however_much_code_it_holds() -> None:
    # a fifth of its chunks are Korean, the rest code; its letters are 0.22 Korean (weighted)
    page = KOREAN_CORPUS / "scaling-up-with-reducer-and-context.md"
    _, blocks = parse_file(page, page.read_bytes())
    code = [b for b in blocks if b.kind == "code"]
    assert sum(len(b.text) for b in code) > sum(len(b.text) for b in blocks) / 2
    assert detect_language("\n".join(b.text for b in blocks), DOCUMENT_SHARE) == "en"
    assert page_language(blocks) == "ko"  # its prose decides


def test_an_english_page_with_a_korean_paragraph_stays_english() -> None:
    english = "Rotate the log files every night and keep five of them for a week. " * 3
    korean = "로그 파일은 매일 밤 교체하고 다섯 개를 일주일 동안 보관합니다."
    blocks = [Block(english, n, n) for n in range(9)] + [Block(korean, 10, 10)]
    assert page_language(blocks) == "en"
    assert page_language([blocks[0], Block(korean, 10, 10), Block(korean, 11, 11)]) == "ko"
    # a page with no prose (a source file) is decided by its code
    assert (
        page_language([Block("// 상태를 초기화합니다\n// 렌더링 후에 실행됩니다", 1, 2, "code")])
        == "ko"
    )
    assert page_language([Block("int main() { return 0; }", 1, 1, "code")]) == "en"
    assert document_language([]) == "en"

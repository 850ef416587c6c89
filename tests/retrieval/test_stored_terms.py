"""Keyword terms are kept with each chunk in the manifest: re-indexing after one file changed
analyses only that file's chunks (the real Kiwi, its calls recorded), the keyword index built
from stored terms ranks as one built by analysing everything again, and a collection indexed
before terms were kept (or by another tokenizer version) is analysed once, then never again.
Real chromadb in tmp dirs with the deterministic HashingEmbedder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatapp.embedding.embedder import HashingEmbedder
from chatapp.retrieval.ingest.indexing import index_paths
from chatapp.retrieval.search.hybrid import Searcher
from chatapp.retrieval.store.collection import Collection, create_or_open, open_collection
from chatapp.retrieval.store.keywords import load_lexical
from chatapp.text import korean
from chatapp.text.terms import TOKENIZER_VERSION

TOPICS = {"apple": "사과", "sea": "바다", "train": "기차", "library": "도서관", "soccer": "축구"}


class RecordingKiwi:
    """The process's real Kiwi analyser, recording every text it is given."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.texts: list[str] = []

    def tokenize(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(text, str):
            self.texts.append(text)
            return self.real.tokenize(text, *args, **kwargs)
        texts = list(text)
        self.texts.extend(texts)
        return self.real.tokenize(texts, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> RecordingKiwi:
    recorder = RecordingKiwi(korean.kiwi())
    monkeypatch.setattr(korean, "_KIWI", recorder)
    return recorder


def write_page(folder: Path, name: str, topic: str, extra: str = "") -> None:
    sentences = [
        f"{topic}에 대한 설명을 자세히 정리했습니다.",
        f"사람들은 {topic}를 좋아하고 매일 이야기합니다.",
        f"{topic}의 역사는 오래되었고 여러 나라에 퍼졌습니다.",
        f"이 문서는 {topic} 관리 방법과 주의할 점을 알려 줍니다.",
        f"처음 배우는 사람도 {topic} 사용법을 쉽게 익힐 수 있습니다.",
    ]
    body = "\n\n".join(" ".join(sentences[i:] + sentences[:i]) for i in range(5))
    (folder / f"{name}.md").write_text(f"# {topic} 안내\n\n{body}\n\n{extra}\n", encoding="utf-8")


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    folder = tmp_path / "pages"
    folder.mkdir()
    for name, topic in TOPICS.items():
        write_page(folder, name, topic)
    return folder


@pytest.fixture
def collection() -> Iterator[Collection]:
    coll = create_or_open("terms", embedder="hashing", chunk_tokens=60, chunk_overlap=8)
    yield coll
    coll.close()


def index(coll: Collection, folder: Path) -> None:
    embedder = HashingEmbedder()
    index_paths(coll, [folder], lambda: embedder)


def analysed_topics(texts: list[str]) -> set[str]:
    return {topic for topic in TOPICS.values() if any(topic in t for t in texts)}


def test_reindex_after_one_change_analyses_only_the_changed_file(
    collection: Collection, pages: Path, recording: RecordingKiwi
) -> None:
    index(collection, pages)
    assert analysed_topics(recording.texts) == set(TOPICS.values())
    assert collection.manifest.counts()[1] > 2 * len(TOPICS)  # several chunks per page
    recording.texts.clear()
    write_page(pages, "sea", "바다", extra="등대는 밤마다 불을 켭니다.")
    index(collection, pages)
    assert recording.texts, "the changed page was analysed"
    assert analysed_topics(recording.texts) == {"바다"}
    searcher = Searcher(collection, HashingEmbedder())
    found = searcher.search("등대", 3, mode="bm25")
    assert found and found[0].path.endswith("sea.md")
    unchanged = searcher.search("도서관", 3, mode="bm25")
    assert unchanged and all(h.path.endswith("library.md") for h in unchanged)


def test_keyword_index_from_stored_terms_ranks_as_one_analysed_again(
    collection: Collection, pages: Path
) -> None:
    index(collection, pages)
    stored = load_lexical(collection)
    with collection.manifest.transaction() as db:
        db.execute("DELETE FROM terms")
    shutil.rmtree(collection.bm25_dir)
    fresh = load_lexical(collection)
    assert stored.ids == fresh.ids and stored.ids
    for query in ("바다의 역사", "사과 관리 방법", "축구를 좋아하는 사람", "기차 사용법"):
        assert stored.top(query, 5) == fresh.top(query, 5)
        assert stored.top(query, 5)


def test_a_collection_without_stored_terms_is_analysed_once(
    collection: Collection, pages: Path, recording: RecordingKiwi
) -> None:
    index(collection, pages)
    with collection.manifest.transaction() as db:  # as a manifest from before terms were kept
        db.execute("DROP TABLE terms")
    name = collection.name
    collection.close()
    old = open_collection(name)  # opening adds the table back, empty
    try:
        shutil.rmtree(old.bm25_dir)
        recording.texts.clear()
        assert Searcher(old, HashingEmbedder()).search("바다", 3, mode="bm25")
        assert analysed_topics(recording.texts) == set(TOPICS.values())
        recording.texts.clear()
        shutil.rmtree(old.bm25_dir)
        rebuilt = load_lexical(old)  # from the terms stored by the first rebuild
        assert not recording.texts and rebuilt.top("축구", 3)
    finally:
        old.close()


def test_terms_of_another_tokenizer_version_are_made_again(
    collection: Collection, pages: Path, recording: RecordingKiwi
) -> None:
    index(collection, pages)
    with collection.manifest.transaction() as db:
        db.execute("UPDATE terms SET version = ? WHERE id LIKE '%'", (TOKENIZER_VERSION - 1,))
    shutil.rmtree(collection.bm25_dir)
    recording.texts.clear()
    load_lexical(collection)
    assert analysed_topics(recording.texts) == set(TOPICS.values())
    stored = collection.manifest.all_terms(TOKENIZER_VERSION)
    assert stored and all(terms for _, terms in stored)


def test_removed_files_take_their_terms_along(collection: Collection, pages: Path) -> None:
    index(collection, pages)
    (pages / "soccer.md").unlink()
    index(collection, pages)
    with collection.manifest.transaction() as db:
        orphans = db.execute(
            "SELECT COUNT(*) FROM terms WHERE id NOT IN (SELECT id FROM chunks)"
        ).fetchone()[0]
        kept = db.execute("SELECT COUNT(*) FROM terms").fetchone()[0]
    assert orphans == 0 and kept == collection.manifest.counts()[1]

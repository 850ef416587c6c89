"""The indexer's writer with files whose keyword terms come after them (the first files of a
run whose reader process loads Kiwi after preparing them), in real chromadb and a real
manifest: such a file is embedded and stored at once and recorded only when its terms are
there, in order; terms that never come are made by the writer; a run stopped before they
come leaves the file fully old and the next run clears its vectors."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from chatapp.embedding.embedder import HashingEmbedder, RoutedEmbedder
from chatapp.retrieval.ingest.discovery import discover
from chatapp.retrieval.ingest.indexing import index_paths
from chatapp.retrieval.ingest.reader import FileReader, PreparedFile, keyword_terms
from chatapp.retrieval.ingest.summary import IndexOptions, IndexProgress, IndexSummary
from chatapp.retrieval.ingest.writer import BatchWriter
from chatapp.retrieval.store.collection import Collection, create_or_open
from chatapp.text.terms import TOKENIZER_VERSION

PAGES = {
    "a.md": "# 설치\n\n리액트를 설치하려면 npm을 사용합니다. 컴포넌트는 함수입니다.\n",
    "b.md": "# State\n\nA component keeps state between renders with useState.\n",
    "c.md": "# 효과\n\nuseEffect로 외부 시스템과 동기화합니다.\n",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in PAGES.items():
        (docs / name).write_text(text, encoding="utf-8")
    return docs


@pytest.fixture
def collection() -> Collection:
    coll = create_or_open("later-terms", embedder="hashing", chunk_tokens=60, chunk_overlap=8)
    yield coll
    coll.close()


def prepared_without_terms(folder: Path, router: RoutedEmbedder) -> list[PreparedFile]:
    reader = FileReader(router, IndexOptions(), 60, 8, set(), threading.Event())
    files = [reader.prepare(item, None, terms=False) for item in discover([folder]).files]
    assert all(p.chunks and not p.terms for p in files)
    return files


def writer_for(coll: Collection, router: RoutedEmbedder) -> BatchWriter:
    return BatchWriter(coll, router, IndexProgress(3, 0, 0, 0.0), lambda: None, {})


def recorded(coll: Collection) -> set[str]:
    return {Path(p).name for p in coll.manifest.files()}


def test_a_file_is_stored_at_once_and_recorded_when_its_terms_arrive(folder, collection) -> None:
    router = RoutedEmbedder.single(HashingEmbedder(), "hashing")
    first, second, third = prepared_without_terms(folder, router)
    first.terms_later = Future()
    second.terms = keyword_terms(second)
    third.terms_later = Future()
    third.terms_later.set_exception(RuntimeError("worker gone"))  # made by the writer
    writer, summary = writer_for(collection, router), IndexSummary("later-terms")
    writer.write([first], summary)
    stored = set(collection.store.embeddings(collection.manifest.pending_cleanup()))
    assert len(stored) == len(first.chunks) and recorded(collection) == set()
    writer.write([second], summary)
    assert recorded(collection) == set(), "a later file was recorded before an earlier one"
    first.terms_later.set_result(keyword_terms(first))
    writer.write([third], summary)
    assert recorded(collection) == {"a.md", "b.md", "c.md"}
    writer.finish(summary, threading.Event())
    terms = dict(collection.manifest.all_terms(TOKENIZER_VERSION))
    for prepared in (first, second, third):
        ids = collection.manifest.chunk_ids(str(prepared.found.path))
        assert [terms[i] for i in ids] == keyword_terms(prepared)
    assert "설치" in terms[collection.manifest.chunk_ids(str(first.found.path))[0]]
    assert not collection.manifest.pending_cleanup()


def test_a_stop_before_the_terms_arrive_leaves_the_file_old(folder, collection) -> None:
    router = RoutedEmbedder.single(HashingEmbedder(), "hashing")
    first, *_ = prepared_without_terms(folder, router)
    first.terms_later = Future()
    writer, summary = writer_for(collection, router), IndexSummary("later-terms")
    writer.write([first], summary)
    stop = threading.Event()
    stop.set()
    writer.finish(summary, stop)  # returns: nothing waits for terms after a stop
    assert recorded(collection) == set() and summary.indexed == []
    orphans = collection.manifest.pending_cleanup()
    assert orphans and collection.store.count() == len(orphans)
    again = index_paths(collection, [folder], lambda: HashingEmbedder())
    assert len(again.indexed) == 3 and not again.interrupted
    ids = {c.id for c in collection.manifest.all_chunks()}
    assert collection.store.count() == len(ids)  # the stopped run's vectors are gone

"""How an indexing run feeds its embedder, in real chromadb and a real manifest: the first batch
is small (the embedder starts early), later ones grow to ``WRITE_BATCH_MAX``; each batch is
embedded in calls of at most ``EMBED_BATCH`` chunks ordered by length (a padding model pads
less); a stop during a batch's calls writes nothing of that batch and the next run finishes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from chatapp.embedding.embedder import HashingEmbedder
from chatapp.retrieval.ingest.indexing import index_paths
from chatapp.retrieval.ingest.reader import embed_text
from chatapp.retrieval.ingest.summary import EMBED_BATCH, WRITE_BATCH_MAX, IndexOptions
from chatapp.retrieval.store.collection import Collection, create_or_open

FILES = 240
PARAGRAPHS = 7


class LoggingEmbedder(HashingEmbedder):
    """The hashing embedder, logging each call's texts (and running ``on_call`` after it)."""

    def __init__(self, log: list, on_call=None) -> None:
        super().__init__()
        self.log, self.on_call, self.calls = log, on_call, 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.log.append(("call", list(texts)))
        if self.on_call is not None:
            self.on_call(self.calls)
        return super().embed(texts)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Files of paragraphs of many lengths, so their chunks are of many lengths."""
    docs = tmp_path / "notes"
    docs.mkdir()
    for f in range(FILES):
        paragraphs = [
            f"# Part {p}\n\n"
            + " ".join(f"note{f}x{p}w{w}" for w in range(3 + (f * 7 + p * 5) % 37))
            for p in range(PARAGRAPHS)
        ]
        (docs / f"note{f:03}.md").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return docs


@pytest.fixture
def collection() -> Collection:
    coll = create_or_open("batches", embedder="hashing", chunk_tokens=48, chunk_overlap=0)
    yield coll
    coll.close()


def run(coll: Collection, folder: Path, embedder: LoggingEmbedder, log: list, **kw):
    def progress(p) -> None:
        if not log or log[-1] != ("written", p.chunks_done):
            log.append(("written", p.chunks_done))

    options = IndexOptions(batch_chunks=16, reader_process=False)
    return index_paths(coll, [folder], lambda: embedder, options, on_progress=progress, **kw)


def batches(log: list) -> list[list[list[str]]]:
    """The embedding calls of each written batch, in order."""
    out: list[list[list[str]]] = [[]]
    for kind, value in log:
        if kind == "call":
            out[-1].append(value)
        elif out[-1]:
            out.append([])
    return [b for b in out if b]


def test_batches_grow_and_are_embedded_in_calls_of_like_length(folder, collection) -> None:
    log: list = []
    summary = run(collection, folder, LoggingEmbedder(log), log)
    assert not summary.interrupted and len(summary.indexed) == FILES
    chunks = collection.manifest.all_chunks()
    tokens = {embed_text(c.path, c): c.tokens for c in chunks}
    assert len(tokens) == len(chunks) and len(set(tokens.values())) > 20  # many lengths
    sizes = [sum(len(call) for call in batch) for batch in batches(log)]
    assert sizes[0] < 16 + PARAGRAPHS, sizes  # the first batch: as soon as 16 chunks are read
    assert sizes[1] >= 32 and sizes[2] >= 64, sizes  # then doubling ...
    assert max(sizes) < WRITE_BATCH_MAX + PARAGRAPHS  # ... up to WRITE_BATCH_MAX
    assert sum(s >= WRITE_BATCH_MAX for s in sizes) >= 2, sizes
    for batch in batches(log):
        assert all(len(call) <= EMBED_BATCH for call in batch)
        lengths = [tokens[text] for call in batch for text in call]
        assert lengths == sorted(lengths), "a batch's chunks were not embedded by length"
        if len(batch) > 1:  # the calls of a large batch are of like length, not mixed
            assert max(tokens[t] for t in batch[0]) <= min(tokens[t] for t in batch[-1])
    assert sum(sizes) == summary.chunks_added == len(chunks)


def test_a_stop_between_a_batchs_calls_writes_nothing_of_it(folder, collection) -> None:
    log: list = []
    stop = threading.Event()
    first_run = LoggingEmbedder(log)

    def stop_in_a_large_batch(calls: int) -> None:
        """Stop during the first call of the first batch after 128 chunks (one of ≥ 256)."""
        done = [v for k, v in log if k == "written"]
        if done and done[-1] >= 2 * EMBED_BATCH:
            stop.set()

    first_run.on_call = stop_in_a_large_batch
    summary = run(collection, folder, first_run, log, stop=stop)
    assert summary.interrupted
    written = max(v for k, v in log if k == "written")
    assert first_run.calls > 1 and written >= 2 * EMBED_BATCH
    chunks = collection.manifest.all_chunks()
    assert len(chunks) == written, "chunks of the stopped batch were recorded"
    assert collection.store.count() == written, "vectors of the stopped batch were stored"
    assert collection.manifest.pending_cleanup() == []
    files = collection.manifest.files()
    assert all(r.n_chunks == len(collection.manifest.chunks_of(p)) for p, r in files.items())
    resumed_log: list = []
    resumed = run(collection, folder, LoggingEmbedder(resumed_log), resumed_log)
    assert not resumed.interrupted
    assert len(resumed.indexed) == FILES - len(files)
    assert collection.store.count() == len(collection.manifest.all_chunks())
    assert len(collection.manifest.files()) == FILES

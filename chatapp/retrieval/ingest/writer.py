"""The writing side of an indexing run, on the calling thread: a batch of prepared files
(reader.py) gets its vectors — copied from an identical indexed file, embedded otherwise,
each chunk in its space — which are written to the vector store first (listed in the manifest's
intent log), then each file switches to its new chunks in one manifest transaction, then the
old vectors are deleted. A run stopped anywhere leaves every file fully old or fully new.

A file whose keyword terms are still being made (the first files of a run whose reader
process loads Kiwi after them) is embedded and stored like the others, and recorded once its
terms are there (``finish`` waits for the last); until then its vectors are only in the
intent log, which the next run clears if this one stops first.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from chatapp.embedding.embedder import RoutedEmbedder
from chatapp.retrieval.ingest.reader import PreparedFile, embed_text, settle_terms, terms_ready
from chatapp.retrieval.ingest.summary import EMBED_BATCH, IndexProgress, IndexSummary
from chatapp.retrieval.store.collection import Collection
from chatapp.retrieval.store.manifest import ChunkRecord, FileRecord
from chatapp.text.terms import TOKENIZER_VERSION


def chunk_id(path: str, sha256: str, ordinal: int) -> str:
    """Stable ids: the same content at the same path gets the same ids on every run."""
    key = hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]
    return f"{key}-{sha256[:12]}-{ordinal}"


def delete_vectors(collection: Collection, ids: list[str]) -> None:
    """Delete vectors the manifest no longer references, then forget them in its intent log."""
    if ids:
        collection.delete_vectors(ids)
        collection.manifest.clear_pending(ids)


Records = list[tuple[PreparedFile, list[ChunkRecord]]]


def embedding_calls(tokens: list[int]) -> list[list[int]]:
    """The embedding calls for one space's chunks of a batch (their token counts): positions
    in calls of at most ``EMBED_BATCH``, shortest chunks first, so a model that pads a call to
    its longest text pads less (see ``WRITE_BATCH_MAX``); the vectors are the same."""
    order = sorted(range(len(tokens)), key=tokens.__getitem__)
    return [order[start : start + EMBED_BATCH] for start in range(0, len(order), EMBED_BATCH)]


class BatchWriter:
    """Writes batches of prepared files into one collection; each chunk's keyword terms are
    recorded with it in the manifest, for the keyword index built after the run."""

    def __init__(
        self,
        collection: Collection,
        router: RoutedEmbedder,
        progress: IndexProgress,
        report: Callable[[], None],
        renamed_from: dict[str, str],
        stop: threading.Event | None = None,
    ) -> None:
        self.collection = collection
        self.manifest = collection.manifest
        self.router = router
        self.progress = progress
        self.report = report
        self.renamed_from = renamed_from  # old path → new path of files whose vectors moved
        self._unrecorded: deque[Records] = deque()  # stored, waiting for keyword terms
        self.stop = stop or threading.Event()

    def write(self, batch: list[PreparedFile], summary: IndexSummary) -> None:
        records: Records = []
        for prepared in batch:
            path = str(prepared.found.path)
            chunks = [
                ChunkRecord(
                    chunk_id(path, prepared.sha256, i),
                    path,
                    i,
                    c.text,
                    c.start_line,
                    c.end_line,
                    c.page,
                    c.heading_text,
                    c.tokens,
                    space,
                )
                for i, (c, space) in enumerate(zip(prepared.chunks, prepared.spaces, strict=True))
            ]
            records.append((prepared, chunks))
        flat = [c for _, chunks in records for c in chunks]
        vectors = self._vectors(records, summary)
        if vectors is None:  # stopped while embedding: nothing of the batch is written
            return
        self.manifest.mark_pending_adds([c.id for c in flat])
        self._store(flat, vectors)
        self._unrecorded.append(records)
        self._record_ready(summary, None)
        self.report()

    def finish(self, summary: IndexSummary, stop: threading.Event) -> None:
        """Record the batches still waiting for their keyword terms, waiting for them (a
        stop leaves them unrecorded)."""
        self._record_ready(summary, stop)
        self.report()

    def _record_ready(self, summary: IndexSummary, stop: threading.Event | None) -> None:
        """Record the stored batches, in order, while their terms are there (``stop``:
        waiting for them, until it is set; None: not waiting)."""
        while self._unrecorded:
            records = self._unrecorded[0]
            if stop is None and not all(terms_ready(p) for p, _ in records):
                return
            if not all(settle_terms(p, stop or threading.Event()) for p, _ in records):
                return
            self._record_files(self._unrecorded.popleft(), summary)

    def _store(self, flat: list[ChunkRecord], vectors: list[np.ndarray]) -> None:
        for space in dict.fromkeys(c.space for c in flat):
            rows = [i for i, c in enumerate(flat) if c.space == space]
            matrix = np.vstack([vectors[i] for i in rows]).astype(np.float32)
            self.collection.store_for(space).upsert([flat[i].id for i in rows], matrix)
            self.collection.remember_dimension(space, int(matrix.shape[1]))

    def _record_files(self, records: Records, summary: IndexSummary) -> None:
        stale: list[str] = []
        now = time.time()
        for prepared, chunks in records:
            path = str(prepared.found.path)
            old_ids = self.manifest.chunk_ids(path)
            record = FileRecord(
                path,
                prepared.found.size,
                prepared.found.mtime_ns,
                prepared.sha256,
                prepared.kind,
                len(chunks),
                now,
            )
            self.manifest.replace_file(record, chunks, old_ids, (TOKENIZER_VERSION, prepared.terms))
            new_ids = {c.id for c in chunks}
            stale.extend(i for i in old_ids if i not in new_ids)
            if prepared.reuse_from is not None:
                self.renamed_from[prepared.reuse_from] = path
            else:
                summary.indexed.append(path)
            self.progress.files_done += 1
            self.progress.chunks_done += len(chunks)
        delete_vectors(self.collection, stale)

    def _vectors(self, records: Records, summary: IndexSummary) -> list[np.ndarray] | None:
        """One vector per chunk of the batch, in its space: copied from an identical indexed
        file whose chunks are in the same spaces where there is one, embedded otherwise (None:
        the run was stopped meanwhile)."""
        rows: list[np.ndarray | None] = []
        for prepared, chunks in records:
            reused = self._reused(prepared, chunks)
            if reused is None:
                prepared.reuse_from = None
                rows.extend([None] * len(chunks))
            else:
                rows.extend(reused)
                summary.chunks_reused += len(chunks)
        flat = [c for _, chunks in records for c in chunks]
        inputs = [
            x for prepared, chunks in records for x in (prepared.inputs or [None] * len(chunks))
        ]
        missing = [i for i, row in enumerate(rows) if row is None]
        began = time.perf_counter()
        for space in dict.fromkeys(flat[i].space for i in missing):
            part = [i for i in missing if flat[i].space == space]
            embedder = self.router.get(space)
            for positions in embedding_calls([flat[i].tokens for i in part]):
                if self.stop.is_set():
                    return None
                call = [part[j] for j in positions]
                texts = [embed_text(flat[i].path, flat[i]) for i in call]
                made = [inputs[i] for i in call]
                if all(x is not None for x in made) and hasattr(embedder, "embed_inputs"):
                    embedded = embedder.embed_inputs(texts, made)  # tokens made by the reader
                else:
                    embedded = embedder.embed(texts)
                for i, vector in zip(call, embedded, strict=True):
                    rows[i] = vector
        summary.embed_s += time.perf_counter() - began
        summary.chunks_added += len(missing)
        return [r for r in rows if r is not None]

    def _reused(
        self, prepared: PreparedFile, chunks: list[ChunkRecord]
    ) -> list[np.ndarray | None] | None:
        """The vectors of the identical file the chunks can reuse (same chunks, same spaces)."""
        if prepared.reuse_from is None:
            return None
        primary = self.collection.primary_space
        source = self.manifest.chunks_of(prepared.reuse_from)
        same = len(source) == len(chunks) and all(
            (s.space or primary) == c.space for s, c in zip(source, chunks, strict=True)
        )
        if not same:
            return None
        stored: dict[str, np.ndarray] = {}
        for space in {c.space for c in chunks}:
            ids = [s.id for s, c in zip(source, chunks, strict=True) if c.space == space]
            stored.update(self.collection.store_for(space).embeddings(ids))
        if not all(s.id in stored for s in source):
            return None
        return [stored[s.id] for s in source]

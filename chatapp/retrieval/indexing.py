"""Incremental indexing of files and folders into a collection.

A reader thread walks, reads, hashes, parses and chunks files while the calling thread embeds
and writes, so reading overlaps with embedding. Only new or changed files (size/mtime differ and
the content hash differs) are re-chunked and re-embedded; a file whose content matches another
indexed file (a rename or a copy) reuses its vectors; files gone from the given folders are
removed. Each file switches from its old chunks to its new ones atomically: new vectors are
written first (listed in the manifest's intent log), then the manifest switches in one
transaction, then old vectors are deleted. A run stopped at any point (Ctrl+C, ``stop``) leaves
every file fully old or fully new, and the next run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chatapp.retrieval.chunking import Chunk, chunk_blocks
from chatapp.retrieval.collection import Collection
from chatapp.retrieval.collection_lock import collection_lock
from chatapp.retrieval.discovery import Discovery, FoundFile, discover
from chatapp.retrieval.embedder import Embedder
from chatapp.retrieval.index_summary import IndexOptions, IndexProgress, IndexSummary
from chatapp.retrieval.loaders import SkipFile, parse_file, read_file
from chatapp.retrieval.manifest import ChunkRecord, FileRecord

__all__ = ["IndexOptions", "IndexProgress", "IndexSummary", "Indexer", "index_paths"]


@dataclass
class _Prepared:
    found: FoundFile
    sha256: str = ""
    kind: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    skip: str | None = None
    touch: bool = False
    reuse_from: str | None = None


def chunk_id(path: str, sha256: str, ordinal: int) -> str:
    """Stable ids: the same content at the same path gets the same ids on every run."""
    key = hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]
    return f"{key}-{sha256[:12]}-{ordinal}"


def embed_text(path: str, chunk: Chunk | ChunkRecord) -> str:
    """What is embedded for a chunk: its file name and heading path give the text context."""
    heading = chunk.heading_text if isinstance(chunk, Chunk) else chunk.heading
    title = Path(path).name + (f" — {heading}" if heading else "")
    return f"{title}\n{chunk.text}"


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r) + os.sep) for r in roots)


class Indexer:
    """One indexing run over one collection."""

    def __init__(
        self,
        collection: Collection,
        embedder_factory: Callable[[], Embedder],
        options: IndexOptions | None = None,
        on_progress: Callable[[IndexProgress], None] | None = None,
        stop: threading.Event | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.collection = collection
        self.on_wait = on_wait  # told when another indexer holds the collection's lock
        self.manifest = collection.manifest
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self.options = options or IndexOptions()
        self.on_progress = on_progress
        self.stop = stop or threading.Event()
        self.chunk_tokens = int(self.manifest.get_meta("chunk_tokens", 200))
        self.chunk_overlap = int(self.manifest.get_meta("chunk_overlap", 32))
        self._renamed_from: dict[str, str] = {}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        return self._embedder

    # -- the run --------------------------------------------------------------------------

    def run(self, roots: Sequence[str | Path]) -> IndexSummary:
        """Find the files under the roots and bring the collection up to date with them."""
        started = time.perf_counter()
        found = discover(
            roots,
            include=self.options.include,
            exclude=self.options.exclude,
            include_hidden=self.options.include_hidden,
            respect_gitignore=self.options.respect_gitignore,
            follow_symlinks=self.options.follow_symlinks,
        )
        return self.run_discovered(found, started)

    def run_discovered(self, found: Discovery, started: float | None = None) -> IndexSummary:
        """Bring the collection up to date with files already found (files that vanished
        since are reported as deleted while indexing). One run at a time per collection: a
        second one waits for the first (``collection_lock``)."""
        folder, name = self.collection.folder, self.collection.name
        with collection_lock(folder, name, on_wait=self.on_wait, stop=self.stop) as held:
            if not held:  # stopped while waiting for the other run
                return IndexSummary(name, interrupted=True)
            return self._run_locked(found, started)

    def _run_locked(self, found: Discovery, started: float | None) -> IndexSummary:
        started = time.perf_counter() if started is None else started
        summary = IndexSummary(self.collection.name)
        self._recover()
        summary.skipped.extend(found.skipped)
        summary.ignored = found.ignored
        summary.files_total = len(found.files)
        self._remember_roots(found.roots)
        known = self.manifest.files()
        work = []
        for item in found.files:
            record = known.get(str(item.path))
            if record and record.size == item.size and record.mtime_ns == item.mtime_ns:
                summary.unchanged += 1
            else:
                work.append(item)
        seen = {str(f.path) for f in found.files}
        self._progress = IndexProgress(len(found.files), summary.unchanged, 0, 0.0)
        self._started = started
        try:
            self._process(work, known, summary)
            if not self.stop.is_set():
                self._remove_vanished(known, seen, found.roots, summary)
        except KeyboardInterrupt:
            self.stop.set()
            summary.interrupted = True
        if self.stop.is_set():
            summary.interrupted = True
            summary.indexed.extend(self._renamed_from.values())  # copies made before the stop
        summary.elapsed_s = time.perf_counter() - started
        return summary

    def _recover(self) -> None:
        """Delete vectors an earlier run wrote or replaced but never recorded or removed."""
        orphans = self.manifest.pending_cleanup()
        if orphans:
            self.collection.store.delete(orphans)
            self.manifest.clear_pending(orphans)

    def _remember_roots(self, roots: Sequence[Path]) -> None:
        have = list(self.manifest.get_meta("roots", []))
        for root in roots:
            if str(root) not in have:
                have.append(str(root))
        self.manifest.set_meta("roots", have)

    def _report(self, current: str | None = None) -> None:
        if self.on_progress is not None:
            self._progress.elapsed_s = time.perf_counter() - self._started
            self._progress.current = current
            self.on_progress(self._progress)

    # -- reader thread ----------------------------------------------------------------------

    def _prepare(
        self, item: FoundFile, known: dict[str, FileRecord], by_hash: dict[str, FileRecord]
    ) -> _Prepared:
        prepared = _Prepared(item)
        try:
            data, prepared.sha256 = read_file(item.path, self.options.max_file_bytes)
            record = known.get(str(item.path))
            if record is not None and record.sha256 == prepared.sha256:
                prepared.touch = True
                return prepared
            prepared.kind, blocks = parse_file(item.path, data)
            del data
            prepared.chunks = chunk_blocks(
                blocks, self._count_tokens, self.chunk_tokens, self.chunk_overlap
            )
            if not prepared.chunks:
                raise SkipFile("no text found")
            twin = by_hash.get(prepared.sha256)
            if twin is not None and twin.kind == prepared.kind and twin.path != str(item.path):
                prepared.reuse_from = twin.path
        except SkipFile as exc:
            prepared.skip = exc.reason
        except Exception as exc:  # one bad file never stops the run
            prepared.skip = f"could not be read ({type(exc).__name__}: {str(exc)[:100]})"
        return prepared

    def _count_tokens(self, text: str) -> int:
        return self.embedder.count_tokens(text)

    def _reader(
        self,
        work: list[FoundFile],
        known: dict[str, FileRecord],
        out: queue.Queue[_Prepared | None],
    ) -> None:
        by_hash = {r.sha256: r for r in known.values()}
        try:
            for item in work:
                if self.stop.is_set():
                    break
                prepared = self._prepare(item, known, by_hash)
                while not self.stop.is_set():
                    try:
                        out.put(prepared, timeout=0.2)
                        break
                    except queue.Full:
                        continue
        finally:
            with contextlib.suppress(queue.Full):
                out.put(None, timeout=1)

    # -- writer (calling thread) --------------------------------------------------------------

    def _process(
        self, work: list[FoundFile], known: dict[str, FileRecord], summary: IndexSummary
    ) -> None:
        if not work:
            return
        # Load the embedder (for token counts and vectors) before the reader needs it.
        _ = self.embedder
        items: queue.Queue[_Prepared | None] = queue.Queue(maxsize=256)
        reader = threading.Thread(
            target=self._reader, args=(work, known, items), name="chatapp-index-reader", daemon=True
        )
        reader.start()
        batch: list[_Prepared] = []
        finished = False
        try:
            while True:
                try:
                    prepared = items.get(timeout=0.2)
                except queue.Empty:
                    if self.stop.is_set():
                        break
                    continue
                if prepared is None:
                    finished = True
                    break
                self._report(str(prepared.found.path))
                if prepared.skip is not None:
                    self._skip(prepared, known, summary)
                elif prepared.touch:
                    self.manifest.touch(
                        str(prepared.found.path), prepared.found.size, prepared.found.mtime_ns
                    )
                    summary.unchanged += 1
                    self._progress.files_done += 1
                else:
                    batch.append(prepared)
                    if sum(len(p.chunks) for p in batch) >= self.options.batch_chunks:
                        self._write(batch, summary)
                        batch = []
                if self.stop.is_set():
                    break
            if batch and not self.stop.is_set():
                self._write(batch, summary)
        finally:
            if not finished:
                self.stop.set()
                # Unblock a reader waiting on a full queue, then let it finish its file.
                with contextlib.suppress(queue.Empty):
                    while True:
                        items.get_nowait()
            reader.join(timeout=5)

    def _skip(
        self, prepared: _Prepared, known: dict[str, FileRecord], summary: IndexSummary
    ) -> None:
        path = str(prepared.found.path)
        summary.skipped.append((path, prepared.skip or "skipped"))
        self._progress.files_done += 1
        if path in known:  # it can no longer be read: its old chunks no longer describe it
            self._delete_vectors(self.manifest.remove_file(path))
            summary.removed.append(path)

    def _write(self, batch: list[_Prepared], summary: IndexSummary) -> None:
        records: list[tuple[_Prepared, list[ChunkRecord]]] = []
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
                )
                for i, c in enumerate(prepared.chunks)
            ]
            records.append((prepared, chunks))
        vectors = self._vectors(records, summary)
        ids = [c.id for _, chunks in records for c in chunks]
        metadatas = [
            {
                "path": c.path,
                "start_line": c.start_line,
                "end_line": c.end_line,
                "page": c.page,
                "heading": c.heading,
                "ord": c.ord,
            }
            for _, chunks in records
            for c in chunks
        ]
        documents = [c.text for _, chunks in records for c in chunks]
        self.manifest.mark_pending_adds(ids)
        store = self.collection.store
        store.upsert(ids, vectors, metadatas, documents)
        if self.manifest.get_meta("dimension") is None:
            self.manifest.set_meta("dimension", int(vectors.shape[1]))
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
            self.manifest.replace_file(record, chunks, old_ids)
            new_ids = {c.id for c in chunks}
            stale.extend(i for i in old_ids if i not in new_ids)
            if prepared.reuse_from is not None:
                self._renamed_from[prepared.reuse_from] = path
            else:
                summary.indexed.append(path)
            self._progress.files_done += 1
            self._progress.chunks_done += len(chunks)
        self._delete_vectors(stale)
        self._report()

    def _vectors(
        self, records: list[tuple[_Prepared, list[ChunkRecord]]], summary: IndexSummary
    ) -> np.ndarray:
        """Vectors for the batch: copied from an identical indexed file where there is one,
        embedded otherwise."""
        rows: list[np.ndarray | None] = []
        for prepared, chunks in records:
            reused: list[np.ndarray | None] = [None] * len(chunks)
            if prepared.reuse_from is not None:
                source = self.manifest.chunk_ids(prepared.reuse_from)
                stored = self.collection.store.embeddings(source) if source else {}
                if len(source) == len(chunks) and all(i in stored for i in source):
                    reused = [stored[i] for i in source]
                    summary.chunks_reused += len(chunks)
                else:
                    prepared.reuse_from = None
            rows.extend(reused)
        missing = [i for i, row in enumerate(rows) if row is None]
        flat = [(p, c) for p, chunks in records for c in chunks]
        if missing:
            texts = [embed_text(flat[i][1].path, flat[i][1]) for i in missing]
            began = time.perf_counter()
            embedded = self.embedder.embed(texts)
            summary.embed_s += time.perf_counter() - began
            summary.chunks_added += len(missing)
            for i, vector in zip(missing, embedded, strict=True):
                rows[i] = vector
        return np.vstack([r for r in rows if r is not None]).astype(np.float32)

    def _delete_vectors(self, ids: list[str]) -> None:
        if ids:
            self.collection.store.delete(ids)
            self.manifest.clear_pending(ids)

    def _remove_vanished(
        self,
        known: dict[str, FileRecord],
        seen: set[str],
        roots: Sequence[Path],
        summary: IndexSummary,
    ) -> None:
        for path in sorted(known):
            if path in seen or not _under(path, roots):
                continue
            self._delete_vectors(self.manifest.remove_file(path))
            if path in self._renamed_from:
                summary.renamed.append((path, self._renamed_from.pop(path)))
            else:
                summary.removed.append(path)
        # Copies of files that still exist are new files that simply reused vectors.
        summary.indexed.extend(self._renamed_from.values())
        self._renamed_from.clear()


def index_paths(
    collection: Collection,
    roots: Sequence[str | Path],
    embedder_factory: Callable[[], Embedder],
    options: IndexOptions | None = None,
    on_progress: Callable[[IndexProgress], None] | None = None,
    stop: threading.Event | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> IndexSummary:
    """Index files and folders into the collection (see the module docstring)."""
    indexer = Indexer(collection, embedder_factory, options, on_progress, stop, on_wait)
    summary = indexer.run(roots)
    if summary.changed:
        from chatapp.retrieval.search import load_lexical

        load_lexical(collection)  # rebuild keyword search now, so the first query is fast
    return summary

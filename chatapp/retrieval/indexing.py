"""Incremental indexing of files and folders into a collection.

A reader thread walks, reads, hashes, parses and chunks files while the calling thread embeds
and writes, so reading overlaps with embedding. Only new or changed files (size/mtime differ and
the content hash differs) are re-chunked and re-embedded; a file whose content matches another
indexed file (a rename or a copy) reuses its vectors; files gone from the given folders are
removed. Each file switches from its old chunks to its new ones atomically: new vectors are
written first (listed in the manifest's intent log), then the manifest switches in one
transaction, then old vectors are deleted. A run stopped at any point (Ctrl+C, ``stop``) leaves
every file fully old or fully new, and the next run resumes where it stopped.

Each chunk goes to the embedding space of its language (``RoutedEmbedder.space_for_chunk``:
MiniLM for Latin-script text, USE multilingual for Korean in an ``auto`` collection, code of a
Korean page with its page) and is sized in the tokens of the embedder its text reads best
with; with ``IndexOptions.reembed`` every file with a chunk outside the space its language now
routes to is re-chunked and re-embedded (switching a collection's embedder).
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
from chatapp.retrieval.embedder import Embedder, RoutedEmbedder
from chatapp.retrieval.index_summary import IndexOptions, IndexProgress, IndexSummary
from chatapp.retrieval.language import document_language
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
        self._single: RoutedEmbedder | None = None
        self._force: set[str] = set()  # files to redo although unchanged (re-embedding)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        return self._embedder

    @property
    def router(self) -> RoutedEmbedder:
        """The embedder per space (one space unless the collection routes by language)."""
        embedder = self.embedder
        if isinstance(embedder, RoutedEmbedder):
            return embedder
        if self._single is None:
            self._single = RoutedEmbedder.single(
                embedder, next(iter(self.collection.plan.values()))
            )
        return self._single

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
            same = record and record.size == item.size and record.mtime_ns == item.mtime_ns
            if same and self.options.reembed and self._needs_reembed(str(item.path)):
                self._force.add(str(item.path))
                work.append(item)
            elif same:
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
        elif self.options.reembed:
            self.collection.drop_unused_spaces()
        summary.elapsed_s = time.perf_counter() - started
        return summary

    def _needs_reembed(self, path: str) -> bool:
        """Whether a chunk of the file is in another space than its language routes to now."""
        primary = self.collection.primary_space
        router = self.router
        chunks = self.manifest.chunks_of(path)
        language = document_language([c.text for c in chunks])
        return any((c.space or primary) != router.space_for_chunk(c.text, language) for c in chunks)

    def _recover(self) -> None:
        """Delete vectors an earlier run wrote or replaced but never recorded or removed."""
        orphans = self.manifest.pending_cleanup()
        if orphans:
            self.collection.delete_vectors(orphans)
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
            forced = str(item.path) in self._force
            if record is not None and record.sha256 == prepared.sha256 and not forced:
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
        return self.router.count_tokens(text)  # in the tokens of the space the text goes to

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
            # The end-of-work mark must arrive however long the writer spends on a batch (a
            # dropped mark left the writer waiting forever); only a stopped run, whose writer
            # no longer waits for it, may go without.
            while True:
                try:
                    out.put(None, timeout=0.2)
                    break
                except queue.Full:
                    if self.stop.is_set():
                        break

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
        router = self.router
        records: list[tuple[_Prepared, list[ChunkRecord]]] = []
        for prepared in batch:
            path = str(prepared.found.path)
            language = document_language([c.text for c in prepared.chunks])
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
                    router.space_for_chunk(c.text, language),
                )
                for i, c in enumerate(prepared.chunks)
            ]
            records.append((prepared, chunks))
        flat = [c for _, chunks in records for c in chunks]
        vectors = self._vectors(records, summary)
        self.manifest.mark_pending_adds([c.id for c in flat])
        for space in dict.fromkeys(c.space for c in flat):
            rows = [i for i, c in enumerate(flat) if c.space == space]
            metadatas = [
                {
                    "path": flat[i].path,
                    "start_line": flat[i].start_line,
                    "end_line": flat[i].end_line,
                    "page": flat[i].page,
                    "heading": flat[i].heading,
                    "ord": flat[i].ord,
                }
                for i in rows
            ]
            matrix = np.vstack([vectors[i] for i in rows]).astype(np.float32)
            self.collection.store_for(space).upsert(
                [flat[i].id for i in rows], matrix, metadatas, [flat[i].text for i in rows]
            )
            self.collection.remember_dimension(space, int(matrix.shape[1]))
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
    ) -> list[np.ndarray]:
        """One vector per chunk of the batch, in its space: copied from an identical indexed
        file whose chunks are in the same spaces where there is one, embedded otherwise."""
        rows: list[np.ndarray | None] = []
        primary = self.collection.primary_space
        for prepared, chunks in records:
            reused: list[np.ndarray | None] = [None] * len(chunks)
            if prepared.reuse_from is not None:
                source = self.manifest.chunks_of(prepared.reuse_from)
                same = len(source) == len(chunks) and all(
                    (s.space or primary) == c.space for s, c in zip(source, chunks, strict=True)
                )
                stored: dict[str, np.ndarray] = {}
                if same:
                    for space in {c.space for c in chunks}:
                        ids = [
                            s.id for s, c in zip(source, chunks, strict=True) if c.space == space
                        ]
                        stored.update(self.collection.store_for(space).embeddings(ids))
                if same and all(s.id in stored for s in source):
                    reused = [stored[s.id] for s in source]
                    summary.chunks_reused += len(chunks)
                else:
                    prepared.reuse_from = None
            rows.extend(reused)
        flat = [c for _, chunks in records for c in chunks]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            began = time.perf_counter()
            for space in dict.fromkeys(flat[i].space for i in missing):
                part = [i for i in missing if flat[i].space == space]
                texts = [embed_text(flat[i].path, flat[i]) for i in part]
                embedded = self.router.get(space).embed(texts)
                for i, vector in zip(part, embedded, strict=True):
                    rows[i] = vector
            summary.embed_s += time.perf_counter() - began
            summary.chunks_added += len(missing)
        return [r for r in rows if r is not None]

    def _delete_vectors(self, ids: list[str]) -> None:
        if ids:
            self.collection.delete_vectors(ids)
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

"""Incremental indexing of files and folders into a collection.

A reader thread reads, hashes, parses and chunks files and makes each chunk's keyword terms
(reader.py; for a large run, in a process of its own: reader_process.py) while the calling
thread embeds and writes (writer.py), so everything but embedding overlaps with embedding; the
terms are kept with the chunks in the manifest and the keyword index is rebuilt from them (a
changed file's chunks are the only ones analysed). Only new or changed files (size/mtime differ
and the content hash differs) are re-chunked and re-embedded; a file whose content matches
another indexed file (a rename or a copy) reuses its vectors; files gone from the given folders
are removed. Each file switches from its old chunks to its new ones atomically: new vectors are
written first (listed in the manifest's intent log), then the manifest switches in one
transaction, then old vectors are deleted. A run stopped at any point (Ctrl+C, ``stop``) leaves
every file fully old or fully new, and the next run resumes where it stopped.

Each chunk goes to the embedding space of its language (``RoutedEmbedder.space_for_chunk``:
MiniLM for Latin-script text, USE multilingual for Korean in an ``auto`` collection, code of a
Korean page with its page, whose language its prose decides) and is sized in the tokens of the
embedder that embeds it; with ``IndexOptions.reembed`` every file with a chunk outside the space
its language now routes to is re-chunked and re-embedded (switching a collection's embedder).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from chatapp.embedding.embedder import Embedder, RoutedEmbedder
from chatapp.retrieval.ingest.discovery import Discovery, FoundFile, discover
from chatapp.retrieval.ingest.loaders import parse_file, read_file
from chatapp.retrieval.ingest.reader import (
    FileReader,
    PreparedFile,
    chunk_spaces,
    page_language,
    start_reader,
)
from chatapp.retrieval.ingest.summary import (
    WRITE_BATCH_MAX,
    IndexOptions,
    IndexProgress,
    IndexSummary,
)
from chatapp.retrieval.ingest.writer import BatchWriter, chunk_id, delete_vectors, embed_text
from chatapp.retrieval.store.collection import Collection
from chatapp.retrieval.store.file_modes import private_writes
from chatapp.retrieval.store.lock import collection_lock
from chatapp.retrieval.store.manifest import FileRecord
from chatapp.text.language import ENGLISH

__all__ = [
    "IndexOptions",
    "IndexProgress",
    "IndexSummary",
    "Indexer",
    "chunk_id",
    "embed_text",
    "index_paths",
]


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
            if same and self.options.reembed and self._needs_reembed(item):
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

    def _needs_reembed(self, item: FoundFile) -> bool:
        """Whether a chunk of the file is in another space than its language routes to now
        (with several spaces the file is parsed again for its page language; one that cannot
        be is left to the reader, which reports it)."""
        primary = self.collection.primary_space
        router = self.router
        chunks = self.manifest.chunks_of(str(item.path))
        language = ENGLISH
        if len(router.spaces) > 1:
            try:
                data, _ = read_file(item, self.options.max_file_bytes)
                language = page_language(
                    parse_file(item.path, data, self.options.max_file_bytes)[1]
                )
            except Exception:
                return True
        spaces = chunk_spaces(router, [c.text for c in chunks], language)
        return any((c.space or primary) != s for c, s in zip(chunks, spaces, strict=True))

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

    # -- the reader thread and the writer (calling thread) ------------------------------------

    def _process(
        self, work: list[FoundFile], known: dict[str, FileRecord], summary: IndexSummary
    ) -> None:
        if not work:
            return
        # Load the embedder (for token counts and vectors) before the reader needs it.
        router = self.router
        files = FileReader(
            router, self.options, self.chunk_tokens, self.chunk_overlap, self._force, self.stop
        )
        writer = BatchWriter(
            self.collection, router, self._progress, self._report, self._renamed_from, self.stop
        )
        reader, items = start_reader(files, work, known)
        batch: list[PreparedFile] = []
        batch_chunks = self.options.batch_chunks
        finished = False
        try:
            # While the reader prepares the first batch (Kiwi loads meanwhile), open the
            # vector store: importing chromadb costs ~1-2 CPU seconds that would otherwise
            # hold up the first write.
            _ = self.collection.store
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
                    if sum(len(p.chunks) for p in batch) >= batch_chunks:
                        writer.write(batch, summary)
                        batch = []
                        batch_chunks = max(batch_chunks, min(2 * batch_chunks, WRITE_BATCH_MAX))
                if self.stop.is_set():
                    break
            if batch and not self.stop.is_set():
                writer.write(batch, summary)
            if not self.stop.is_set():
                writer.finish(summary, self.stop)
        finally:
            if not finished:
                self.stop.set()
                # Unblock a reader waiting on a full queue, then let it finish its file.
                with contextlib.suppress(queue.Empty):
                    while True:
                        items.get_nowait()
            reader.join(timeout=5)

    def _skip(
        self, prepared: PreparedFile, known: dict[str, FileRecord], summary: IndexSummary
    ) -> None:
        path = str(prepared.found.path)
        summary.skipped.append((path, prepared.skip or "skipped"))
        self._progress.files_done += 1
        if path in known:  # it can no longer be read: its old chunks no longer describe it
            delete_vectors(self.collection, self.manifest.remove_file(path))
            summary.removed.append(path)

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
            delete_vectors(self.collection, self.manifest.remove_file(path))
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
    with private_writes():
        summary = indexer.run(roots)
        if summary.changed:
            from chatapp.retrieval.store.keywords import load_lexical

            # Rebuild keyword search now, so the first query is fast; every chunk's terms are
            # in the manifest (this run's made by its reader), so nothing is analysed again.
            load_lexical(collection)
        from chatapp.retrieval.store.vector_copy import refresh_copies

        refresh_copies(collection)  # the vectors a search reads without chromadb
    collection.make_private()  # anything the vector store wrote outside the calls above
    return summary

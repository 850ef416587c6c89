"""The reading side of an indexing run, on its own thread: files are read, hashed, parsed and
chunked, each chunk gets its embedding space and its keyword terms, while the calling thread
embeds and writes earlier files (writer.py). Everything a file needs that is not
embedding happens here, so it overlaps with the embedder's work instead of following it.

On a machine with several cores a large run prepares its files in a process of its own
(reader_process.py), the thread only passing them on in order: Kiwi and the tokenizers hold
Python's lock while they work, which in one process stalled the embedder's thread for that time.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatapp.embedding.embedder import RoutedEmbedder
from chatapp.embedding.routing import ChunkRouter
from chatapp.retrieval.ingest.chunking import Chunk, chunk_blocks
from chatapp.retrieval.ingest.discovery import FoundFile
from chatapp.retrieval.ingest.loaders import SkipFile, parse_file, read_file
from chatapp.retrieval.ingest.markup import Block
from chatapp.retrieval.ingest.summary import IndexOptions
from chatapp.retrieval.store.manifest import ChunkRecord, FileRecord
from chatapp.text.language import document_language
from chatapp.text.terms import file_terms

QUEUE_FILES = 256
"""Files read ahead of the writer at most."""


@dataclass
class PreparedFile:
    """One file as the reader leaves it for the writer."""

    found: FoundFile
    sha256: str = ""
    kind: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    spaces: list[str] = field(default_factory=list)
    """The embedding space of each chunk (by its language and its document's)."""
    terms: list[list[str]] = field(default_factory=list)
    """The keyword (BM25) terms of each chunk, as ``load_lexical`` would make them."""
    inputs: list[Any] = field(default_factory=list)
    """Each chunk's embedder input (its tokens) where its space's embedder takes one made
    ahead (``embed_inputs``), else None."""
    skip: str | None = None
    touch: bool = False
    reuse_from: str | None = None
    terms_later: Future[Any] | None = None
    """Where ``terms`` are still being made (a reader process's future, ``settle_terms``)."""


class FileReader:
    """Prepares the files of one run; ``run`` is the reader thread's body."""

    def __init__(
        self,
        router: RoutedEmbedder | ChunkRouter,
        options: IndexOptions,
        chunk_tokens: int,
        chunk_overlap: int,
        force: set[str],
        stop: threading.Event,
    ) -> None:
        self.router = router
        self.options = options
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.force = force  # files to redo although unchanged (re-embedding)
        self.stop = stop
        self._vocabulary: dict[str, str] = {}  # one string per distinct term, not per use

    def prepare(
        self, item: FoundFile, record: FileRecord | None, terms: bool = True
    ) -> PreparedFile:
        """One file read, chunked and analysed (``record``: what the manifest holds for its
        path); a file that cannot be read comes back with ``skip`` set, never raising.
        ``terms=False`` leaves its keyword terms to ``terms_of``."""
        prepared = PreparedFile(item)
        try:
            data, prepared.sha256 = read_file(item, self.options.max_file_bytes)
            forced = str(item.path) in self.force
            if record is not None and record.sha256 == prepared.sha256 and not forced:
                prepared.touch = True
                return prepared
            prepared.kind, blocks = parse_file(item.path, data, self.options.max_file_bytes)
            del data
            language = page_language(blocks)
            prepared.chunks = chunk_blocks(
                blocks, self.router.chunk_counter(language), self.chunk_tokens, self.chunk_overlap
            )
            if not prepared.chunks:
                raise SkipFile("no text found")
            prepared.spaces = chunk_spaces(self.router, [c.text for c in prepared.chunks], language)
            prepared.inputs = self._inputs(str(item.path), prepared)
            if terms:
                prepared.terms = self.terms_of(prepared)
        except SkipFile as exc:
            prepared.skip = exc.reason
        except Exception as exc:  # one bad file never stops the run
            prepared.skip = f"could not be read ({type(exc).__name__}: {str(exc)[:100]})"
        return prepared

    def terms_of(self, prepared: PreparedFile) -> list[list[str]]:
        """The keyword terms of each of a prepared file's chunks (Kiwi for Hangul)."""
        return keyword_terms(prepared, self._vocabulary)

    def run(
        self,
        work: list[FoundFile],
        known: dict[str, FileRecord],
        out: queue.Queue[PreparedFile | None],
    ) -> None:
        by_hash = {r.sha256: r for r in known.values()}
        try:
            for prepared in self._prepared(work, known):
                if self.stop.is_set():
                    break
                twin = by_hash.get(prepared.sha256) if prepared.chunks else None
                path = str(prepared.found.path)
                if twin is not None and twin.kind == prepared.kind and twin.path != path:
                    prepared.reuse_from = twin.path
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

    def _inputs(self, path: str, prepared: PreparedFile) -> list[Any]:
        inputs: list[Any] = [None] * len(prepared.chunks)
        for space in dict.fromkeys(prepared.spaces):
            maker = self.router.input_maker(space)
            if maker is None:
                continue
            rows = [i for i, s in enumerate(prepared.spaces) if s == space]
            made = maker([embed_text(path, prepared.chunks[i]) for i in rows])
            for i, value in zip(rows, made, strict=True):
                inputs[i] = value
        return inputs

    def _prepared(
        self, work: list[FoundFile], known: dict[str, FileRecord]
    ) -> Iterator[PreparedFile]:
        """The work's files prepared, in order: in a reader process when it pays
        (``reader_process.wants_process``), here otherwise."""
        from chatapp.retrieval.ingest import reader_process

        if reader_process.wants_process(work, self.options):
            # Started first: it warms up while the models load (process_router loads them).
            loaded = not isinstance(self.router, RoutedEmbedder) or self.router.loaded
            process = reader_process.ReaderProcess.start(work, models_loaded=loaded)
            try:
                router = reader_process.process_router(self.router)
            except BaseException:
                process.close()
                raise
            if router is not None:
                yield from process.prepared(self, router, work, known)
                return
            process.close()
        for item in work:
            if self.stop.is_set():
                return
            yield self.prepare(item, known.get(str(item.path)))


def embed_text(path: str, chunk: Chunk | ChunkRecord) -> str:
    """What is embedded for a chunk: its file name and heading path give the text context."""
    heading = chunk.heading_text if isinstance(chunk, Chunk) else chunk.heading
    title = Path(path).name + (f" — {heading}" if heading else "")
    return f"{title}\n{chunk.text}"


def keyword_terms(
    prepared: PreparedFile, vocabulary: dict[str, str] | None = None
) -> list[list[str]]:
    """The keyword terms of each chunk of a prepared file, as ``load_lexical`` makes them
    (``vocabulary``: one string per distinct term across files)."""
    name = os.path.basename(str(prepared.found.path))
    made = file_terms(name, [(c.heading_text, c.text) for c in prepared.chunks])
    if vocabulary is None:
        return made
    return [[vocabulary.setdefault(t, t) for t in terms] for terms in made]


def terms_ready(prepared: PreparedFile) -> bool:
    """Whether a prepared file's keyword terms are there (or failed, to be made here)."""
    return prepared.terms_later is None or prepared.terms_later.done()


def settle_terms(prepared: PreparedFile, stop: threading.Event) -> bool:
    """Wait for a prepared file's keyword terms still being made and put them in ``terms``
    (made here when their worker died or was closed first); False if stopped meanwhile."""
    later = prepared.terms_later
    if later is None:
        return True
    while True:
        try:
            made = later.result(timeout=0.2)
            break
        except TimeoutError:
            if stop.is_set():
                return False
        except Exception:  # the worker died, or the task was cancelled (BrokenProcessPool)
            made = None
            break
    prepared.terms = made if made is not None else keyword_terms(prepared)
    prepared.terms_later = None
    return True


def page_language(blocks: list[Block]) -> str:
    """A document's language, from its prose (``document_language``)."""
    prose = [b.text for b in blocks if b.kind != "code"] or [b.text for b in blocks]
    return document_language(prose)


def chunk_spaces(
    router: RoutedEmbedder | ChunkRouter, texts: list[str], language: str
) -> list[str]:
    """The space of each chunk of a document in ``language`` (``space_for_chunk``)."""
    if len(router.spaces) == 1:
        return [router.spaces[0]] * len(texts)
    return [router.space_for_chunk(t, language) for t in texts]


def start_reader(
    reader: FileReader, work: list[FoundFile], known: dict[str, FileRecord]
) -> tuple[threading.Thread, queue.Queue[PreparedFile | None]]:
    """The reader thread, started, and the queue it fills (``None`` marks the end)."""
    items: queue.Queue[PreparedFile | None] = queue.Queue(maxsize=QUEUE_FILES)
    thread = threading.Thread(
        target=reader.run, args=(work, known, items), name="chatapp-index-reader", daemon=True
    )
    thread.start()
    return thread, items

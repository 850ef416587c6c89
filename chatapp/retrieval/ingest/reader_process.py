"""The indexer's reader in a process of its own, for runs large enough to pay for one.

Kiwi's morpheme analysis and the tokenizers that size chunks are C++ code that keeps Python's
lock (the GIL) while it runs; next to the embedder in one process, every second of it was a
second the embedder's thread waited to hand the next batch to torch (README, Performance). So a
run with at least ``PROCESS_MIN_BYTES`` of files to read, on a machine with two cores or more,
prepares them in one spawned worker process — ``FileReader.prepare``, the same code the reader
thread runs otherwise — while the reader thread keeps ``IN_FLIGHT`` files submitted and passes
them on in their order.

- The worker starts before the embedders load: while the calling process loads them (the token
  counters it hands on come from them), the worker imports the reader's code and, when the first
  files show Hangul, loads Kiwi (with its first analysis, a few CPU seconds) — work that used to
  follow the models' load, one after the other. Then it gets a ``ChunkRouter`` (the space plan
  and each space's tokenizer, no model weights); a file with Hangul loads Kiwi there if it has
  not loaded yet.
- When the models were loaded before the run (a second folder indexed from the chat), Kiwi's
  load would hold up the first batch instead: the reader thread prepares one batch of files
  itself while the worker starts (nothing is embedded yet for its GIL to hold up), the worker
  prepares the next ``EARLY_BYTES`` of files, then loads Kiwi and makes the keyword terms of
  all of them, while the writer embeds those files (it records each once its terms arrive,
  ``PreparedFile.terms_later``).
- Ctrl+C is the calling process's: SIGINT is blocked for the worker from its start and then
  ignored; a stopped run cancels the files not started and waits for the one in progress.
- A worker that cannot start or dies (killed, out of memory) is replaced by the reader thread
  for every file it had not returned: the run finishes as it would without it.
- The worker exits when the run ends, and on its own within half a second when the calling
  process is gone (killed), so none is left behind.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import replace
from typing import Any, Protocol

from chatapp.embedding.embedder import RoutedEmbedder
from chatapp.embedding.routing import ChunkRouter
from chatapp.retrieval.ingest.discovery import FoundFile
from chatapp.retrieval.ingest.file_opening import read_head
from chatapp.retrieval.ingest.summary import IndexOptions
from chatapp.retrieval.store.manifest import FileRecord
from chatapp.text.language import has_hangul


class Reader(Protocol):
    """What this module needs of reader.py's ``FileReader`` (not imported: it imports us)."""

    options: IndexOptions
    chunk_tokens: int
    chunk_overlap: int
    force: set[str]
    stop: threading.Event

    def prepare(self, item: FoundFile, record: FileRecord | None, terms: bool = True) -> Any: ...

    def terms_of(self, prepared: Any) -> list[list[str]]: ...


PROCESS_MIN_BYTES = 256 * 1024
"""Files to read below which the reader thread does the work: starting the worker costs
about a third of a CPU second, which a smaller run does not earn back."""
IN_FLIGHT = 8
"""Files submitted to the worker ahead of the one being passed on."""
PARENT_CHECK_S = 0.5
PEEK_FILES = 16
PEEK_BYTES = 4096
"""The first files, and bytes of each, looked at for Hangul before the worker loads Kiwi."""
EARLY_BYTES = 160 * 1024
"""Files prepared before Kiwi loads, when the models are loaded already: about two seconds of
USE's work on Korean here, a little more than Kiwi's load and first analysis."""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def wants_process(work: list[FoundFile], options: IndexOptions) -> bool:
    """Whether the run's files are prepared in a reader process (before its router is known):
    not when turned off, on one core or for a small run."""
    if options.reader_process is False:
        return False
    small = sum(item.size for item in work) < PROCESS_MIN_BYTES
    return options.reader_process is True or (cores() >= 2 and not small)


def process_router(router: RoutedEmbedder | ChunkRouter) -> ChunkRouter | None:
    """The router to hand a reader process (loading the embedders), or None when an
    embedder's tokenizer cannot travel: the files are then read on the thread."""
    return router if isinstance(router, ChunkRouter) else router.chunk_router()


def shows_hangul(work: list[FoundFile], files: int = PEEK_FILES) -> bool:
    """Whether the first bytes of one of the first files hold Hangul (Kiwi is worth loading
    ahead); a file that cannot be read shows none."""
    for item in work[:files]:
        # Opened as the scan found it: a file swapped for a FIFO must not block the run here.
        head = read_head(item, PEEK_BYTES).decode("utf-8", errors="ignore")
        if has_hangul(head):
            return True
    return False


_WORKER: Reader | None = None


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # ignored now, not pending
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _warm(korean: bool) -> None:
    """The reader's code imported and, for a folder with Hangul, Kiwi loaded and run once
    (its first analysis sets it up: half of its cost), while the caller loads the models."""
    from chatapp.retrieval.ingest import chunking, loaders  # noqa: F401  (what the reader runs)
    from chatapp.text import terms  # noqa: F401

    if korean:
        from chatapp.text.korean import korean_terms

        korean_terms("한국어 문장.")


def _configure(
    reader_class: type,
    router: ChunkRouter,
    options: IndexOptions,
    chunk_tokens: int,
    chunk_overlap: int,
    force: set[str],
) -> None:
    global _WORKER
    _WORKER = reader_class(router, options, chunk_tokens, chunk_overlap, force, threading.Event())


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


_DEFERRED: dict[str, Any] = {}
"""Files prepared without their keyword terms, by path, until ``_deferred_terms``."""


def _prepare(item: FoundFile, record: FileRecord | None, terms: bool = True) -> Any:
    assert _WORKER is not None, "reader process not started"
    prepared = _WORKER.prepare(item, record, terms)
    if not terms and prepared.chunks and prepared.skip is None:
        _DEFERRED[str(item.path)] = prepared
    return prepared


def _terms_of(prepared: Any) -> list[list[str]]:
    """The keyword terms of a file prepared in the calling process."""
    assert _WORKER is not None, "reader process not started"
    return _WORKER.terms_of(prepared)


def _deferred_terms(path: str) -> list[list[str]] | None:
    """The keyword terms of a file ``_prepare`` left without (None for one it skipped)."""
    assert _WORKER is not None, "reader process not started"
    prepared = _DEFERRED.pop(path, None)
    return None if prepared is None else _WORKER.terms_of(prepared)


def early_files(work: list[FoundFile], budget: int = EARLY_BYTES) -> int:
    """How many of the first files fit in ``budget`` bytes (at least one)."""
    total = 0
    for count, item in enumerate(work):
        total += item.size
        if total > budget:
            return max(1, count)
    return len(work)


class ReaderProcess:
    """One run's worker process: ``start`` spawns it (and warms it up) before the run's
    router is known; ``prepared`` hands it the router and passes the files on; ``close``
    ends it."""

    def __init__(self, pool: ProcessPoolExecutor, defer_terms: bool = False) -> None:
        self.pool = pool
        self.defer_terms = defer_terms
        """Whether the first files' keyword terms follow them (Kiwi not loaded ahead)."""

    @classmethod
    def start(cls, work: list[FoundFile], models_loaded: bool = False) -> ReaderProcess:
        """Called on the reader thread; ``models_loaded``: no model load to warm up beside."""
        # Blocked here, SIGINT stays blocked in the process spawned from this thread: a
        # Ctrl+C while it starts cannot print a traceback from it (the main thread still gets
        # it). multiprocessing's resource tracker, started with the pool's first lock,
        # unblocks SIGINT in the thread that starts it; start it first, so the block below is
        # the last word.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )
        # One worker: its tasks run in order. One that cannot start fails ``prepared``'s
        # first task too, which then falls back to the thread.
        korean = shows_hangul(work)
        with contextlib.suppress(Exception):
            pool.submit(_warm, korean and not models_loaded)
        return cls(pool, defer_terms=korean and models_loaded)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _first_files(
        self,
        reader: Reader,
        work: list[FoundFile],
        known: dict[str, FileRecord],
        pending: deque[Future[Any]],
    ) -> dict[int, Future[Any]]:
        """The first files without their keyword terms, and the futures of those terms by
        file: one batch prepared here while the worker starts (the models are loaded, and
        nothing is embedded yet for the GIL to hold up), the next ``EARLY_BYTES`` there, then
        Kiwi's load and their terms, all queued in that order."""
        own: list[Any] = []
        while (
            len(own) < len(work) and sum(len(p.chunks) for p in own) < reader.options.batch_chunks
        ):
            item = work[len(own)]
            own.append(reader.prepare(item, known.get(str(item.path)), terms=False))
        early = len(own) + early_files(work[len(own) :])
        for prepared in own:
            ready: Future[Any] = Future()
            ready.set_result(prepared)
            pending.append(ready)
        for item in work[len(own) : early]:
            pending.append(self.pool.submit(_prepare, item, known.get(str(item.path)), False))
        later: dict[int, Future[Any]] = {}
        for i, prepared in enumerate(own):
            if prepared.chunks and prepared.skip is None:  # the chunks alone travel
                later[i] = self.pool.submit(_terms_of, replace(prepared, inputs=[], spaces=[]))
        for i in range(len(own), early):
            later[i] = self.pool.submit(_deferred_terms, str(work[i].path))
        return later

    def prepared(
        self,
        reader: Reader,
        router: ChunkRouter,
        work: list[FoundFile],
        known: dict[str, FileRecord],
    ) -> Iterator[Any]:
        """The work's files prepared (``reader.prepare``) by the worker running the same
        reader class, in order, then the worker closed; called on the reader thread."""
        pending: deque[Future[Any]] = deque()
        done = submitted = 0
        later: dict[int, Future[Any]] = {}  # the terms of the first files, when they follow
        try:
            self.pool.submit(
                _configure,
                type(reader),
                router,
                reader.options,
                reader.chunk_tokens,
                reader.chunk_overlap,
                reader.force,
            )
            if self.defer_terms:
                later = self._first_files(reader, work, known, pending)
                submitted = len(pending)
            while done < len(work):
                while submitted < len(work) and submitted - done < IN_FLIGHT:
                    item = work[submitted]
                    record = known.get(str(item.path))
                    pending.append(self.pool.submit(_prepare, item, record))
                    submitted += 1
                future = pending.popleft()
                while True:
                    if reader.stop.is_set():
                        return
                    try:
                        prepared = future.result(timeout=0.2)
                        break
                    except TimeoutError:
                        continue
                if done in later and prepared.chunks and prepared.skip is None:
                    prepared.terms_later = later[done]
                yield prepared
                done += 1
            # Terms still being made are waited for here: closing the worker would cancel them.
            waiting = list(later.values())
            while waiting and not reader.stop.is_set() and wait(waiting, timeout=0.2).not_done:
                continue
        except Exception:
            # The worker died or could not start (BrokenProcessPool, a pickling error): the
            # reader thread prepares the files it had not returned.
            pass
        finally:
            self.close()
        for item in work[done:]:
            if reader.stop.is_set():
                return
            yield reader.prepare(item, known.get(str(item.path)))

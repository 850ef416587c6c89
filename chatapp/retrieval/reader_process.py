"""The indexer's reader in a process of its own, for runs large enough to pay for one.

Kiwi's morpheme analysis and the tokenizers that size chunks are C++ code that keeps Python's
lock (the GIL) while it runs; next to the embedder in one process, every second of it was a
second the embedder's thread waited to hand the next batch to torch, and a Korean folder
indexed at ~0.6 of the embedder's own speed. So a run with at least ``PROCESS_MIN_BYTES`` of
files to read, on a machine with two cores or more, prepares them in one spawned worker
process — ``FileReader.prepare``, the same code the reader thread runs otherwise — while the
reader thread keeps ``IN_FLIGHT`` files submitted and passes them on in their order.

- The worker gets a ``ChunkRouter`` (the space plan and each space's tokenizer, no model
  weights) and loads Kiwi only when a file has Hangul.
- Ctrl+C is the calling process's: SIGINT is blocked for the worker from its start and then
  ignored; a stopped run cancels the files not started and waits for the one in progress.
- A worker that cannot start or dies (killed, out of memory) is replaced by the reader thread
  for every file it had not returned: the run finishes as it would without it.
- The worker exits when the run ends, and on its own within half a second when the calling
  process is gone (killed), so none is left behind.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from chatapp.retrieval.chunk_routing import ChunkRouter
from chatapp.retrieval.discovery import FoundFile
from chatapp.retrieval.embedder import RoutedEmbedder
from chatapp.retrieval.index_summary import IndexOptions
from chatapp.retrieval.manifest import FileRecord


class Reader(Protocol):
    """What this module needs of index_reader's ``FileReader`` (not imported: it imports us)."""

    options: IndexOptions
    chunk_tokens: int
    chunk_overlap: int
    force: set[str]
    stop: threading.Event

    def prepare(self, item: FoundFile, record: FileRecord | None) -> Any: ...


PROCESS_MIN_BYTES = 256 * 1024
"""Files to read below which the reader thread does the work: starting the worker costs
about a third of a CPU second, which a smaller run does not earn back."""
IN_FLIGHT = 8
"""Files submitted to the worker ahead of the one being passed on."""
PARENT_CHECK_S = 0.5


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def process_router(
    router: RoutedEmbedder | ChunkRouter, work: list[FoundFile], options: IndexOptions
) -> ChunkRouter | None:
    """The router to hand a reader process, or None when the files are read on the thread:
    turned off, one core, a small run, or an embedder whose tokenizer cannot travel."""
    if options.reader_process is False:
        return None
    small = sum(item.size for item in work) < PROCESS_MIN_BYTES
    if options.reader_process is None and (cores() < 2 or small):
        return None
    return router if isinstance(router, ChunkRouter) else router.chunk_router()


_WORKER: Reader | None = None


def _start_worker(
    reader_class: type,
    router: ChunkRouter,
    options: IndexOptions,
    chunk_tokens: int,
    chunk_overlap: int,
    force: set[str],
    parent: int,
) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # ignored now, not pending
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _WORKER = reader_class(router, options, chunk_tokens, chunk_overlap, force, threading.Event())


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _prepare(item: FoundFile, record: FileRecord | None) -> Any:
    assert _WORKER is not None, "reader process not started"
    return _WORKER.prepare(item, record)


def prepared_in_process(
    reader: Reader, router: ChunkRouter, work: list[FoundFile], known: dict[str, FileRecord]
) -> Iterator[Any]:
    """The work's files prepared (``reader.prepare``) by a worker process running the same
    reader class, in order; called on the reader thread."""
    # Blocked here, SIGINT stays blocked in the process spawned from this thread: a Ctrl+C
    # while it starts cannot print a traceback from it (the main thread still gets it).
    # multiprocessing's resource tracker, started with the pool's first lock, unblocks SIGINT
    # in the thread that starts it; start it first, so the block below is the last word.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(
            type(reader),
            router,
            reader.options,
            reader.chunk_tokens,
            reader.chunk_overlap,
            reader.force,
            os.getpid(),
        ),
    )
    pending: deque[Future[Any]] = deque()
    done = submitted = 0
    try:
        while done < len(work):
            while submitted < len(work) and submitted - done < IN_FLIGHT:
                item = work[submitted]
                pending.append(pool.submit(_prepare, item, known.get(str(item.path))))
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
            yield prepared
            done += 1
    except Exception:
        # The worker died or could not start (BrokenProcessPool, a pickling error): the
        # reader thread prepares the files it had not returned.
        pass
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for item in work[done:]:
        if reader.stop.is_set():
            return
        yield reader.prepare(item, known.get(str(item.path)))

"""One writer at a time per collection.

Two indexers on one collection (``chatapp index --watch`` plus a manual run, or the UI and the
CLI) would each clean up the other's half-written vectors as "orphans" while the other's
manifest lists them, and those files would never be indexed again. Every run therefore holds
the collection's lock file (``index.lock`` in its manifest folder, an OS file lock released
when the process ends, even by a crash or a kill). A second run waits, saying so, or fails with
a message naming the process that holds it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from chatapp.errors import RetrievalError
from chatapp.paths import not_writable, write_failure

LOCK_FILE = "index.lock"
_POLL_S = 0.2

try:
    import fcntl

    def _try_lock(handle: IO[str]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _try_lock(handle: IO[str]) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True

    def _unlock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


def _holder(path: Path) -> str:
    """Who holds the lock, as its holder wrote it ("process 123 since 12:00:01")."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def collection_lock(
    folder: Path,
    name: str,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Iterator[bool]:
    """Hold the collection's lock for the block; yields False (without the lock) when ``stop``
    was set while waiting. With ``wait=False`` a busy collection raises RetrievalError."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if write_failure(exc) is None:
            raise
        raise not_writable(folder, exc) from None  # a read-only home: one line
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        if not _try_lock(handle):
            holder = _holder(path)
            if not wait:
                raise RetrievalError(
                    f"collection {name}: another indexer is running ({holder}); "
                    "wait for it to finish, or stop it"
                )
            if on_wait is not None:
                on_wait(
                    f"collection {name}: another indexer is running ({holder}); "
                    "waiting for it to finish (Ctrl+C to give up)"
                )
            while not _try_lock(handle):
                if stop is not None and stop.wait(_POLL_S):
                    yield False
                    return
                if stop is None:
                    time.sleep(_POLL_S)
        try:
            since = dt.datetime.now().isoformat(timespec="seconds")
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} since {since}")
            handle.flush()
            yield True
        finally:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
                handle.flush()
            _unlock(handle)

"""llama.cpp's thread counts for each reply (a helper of llama_cpp.py).

With ``model.n_threads`` set, llama.cpp decodes and reads prompts with exactly that many threads.
Unset, each reply starts with the cores other programs left free (``thread_fit.CpuProbe``) and
``ThreadFit`` may drop a thread between two token decodes when the speed collapses;
``llama_set_n_threads`` takes effect at the next decode. What it learned is kept per model in
the cache folder (``threads.json``), so the next ``chatapp ask`` starts where the last one
ended; a file that cannot be read or written is simply not used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chatapp.engine.thread_fit import CpuProbe, FreeCoreProbe, ThreadFit, ThreadMemory

log = logging.getLogger(__name__)

MEMORY_FILE = "threads.json"
MAX_MODELS = 16
"""Entries kept in the memory file (the most recently saved)."""


def _memory_path() -> Path | None:
    from chatapp import paths

    try:
        return paths.cache_dir() / MEMORY_FILE
    except OSError:  # an unwritable home: nothing is remembered across processes
        return None


class LlamaThreads:
    """Sets a ``llama_cpp.Llama``'s decode and batch threads around each reply."""

    def __init__(
        self,
        model_key: str,
        *,
        fixed: int | None,
        ceiling: int,
        probe: FreeCoreProbe | None = None,
        memory_path: Path | None = None,
    ) -> None:
        self.fixed = fixed
        self.ceiling = ceiling
        self.key = model_key
        self.llm: Any = None
        self._probe: FreeCoreProbe | None = probe if probe is not None or fixed else CpuProbe()
        self._path = memory_path if memory_path is not None else _memory_path()
        self.fit: ThreadFit | None = None
        if fixed is None:
            self.fit = ThreadFit(ceiling, self._load_memory())
        self.current = fixed or ceiling

    @property
    def initial(self) -> int:
        """The count the context is created with (every reply sets its own)."""
        return self.current

    @property
    def last_reply(self) -> list[int]:
        """The thread counts the last reply decoded with, in order."""
        return list(self.fit.history) if self.fit is not None else [self.current]

    def attach(self, llm: Any) -> None:
        self.llm = llm

    # -- around a reply -----------------------------------------------------------------------

    def begin_reply(self) -> None:
        if self.fit is None:
            return
        free = self._probe.free_cores() if self._probe is not None else None
        self._set(self.fit.start(free), why=f"free cores {free:.2f}" if free is not None else "")

    def end_reply(self) -> None:
        if self.fit is None:
            return
        if self._probe is not None:
            self._probe.mark()
        if self.fit.finish():
            self._save_memory()

    def timed_eval(self, original: Callable[[Sequence[int]], None]) -> Callable[..., None]:
        """``original`` (``Llama.eval``) timing each one-token decode for the fit."""
        if self.fit is None:
            return original
        fit = self.fit
        clock = time.perf_counter

        def evaluate(tokens: Sequence[int]) -> None:
            if len(tokens) != 1:
                original(tokens)
                return
            started = clock()
            original(tokens)
            threads = fit.observe(clock() - started)
            if threads is not None:
                self._set(threads, why="decode speed")

        return evaluate

    def _set(self, threads: int, *, why: str) -> None:
        if threads == self.current or self.llm is None:
            self.current = threads
            return
        import llama_cpp

        llama_cpp.llama_set_n_threads(self.llm._ctx.ctx, threads, threads)
        log.info("llama.cpp threads %d -> %d (%s)", self.current, threads, why)
        self.current = threads

    # -- memory across processes --------------------------------------------------------------

    def _read_file(self) -> dict[str, Any]:
        if self._path is None:
            return {}
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _load_memory(self) -> ThreadMemory:
        return ThreadMemory.from_json(self._read_file().get(self.key))

    def _save_memory(self) -> None:
        if self._path is None or self.fit is None:
            return
        data = self._read_file()
        data.pop(self.key, None)
        data[self.key] = self.fit.memory.to_json()  # newest last
        data = dict(list(data.items())[-MAX_MODELS:])
        with contextlib.suppress(OSError):
            fd, tmp = tempfile.mkstemp(prefix=".threads.", dir=self._path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(data, out)
                os.replace(tmp, self._path)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def model_key(path: Path, ceiling: int) -> str:
    """What the memory is kept under: the model file (name and size) and the cores we have."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return f"{path.name}:{size}:{ceiling}"

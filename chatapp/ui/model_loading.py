"""The model behind the chat UI: loaded off the UI thread, waited for by replies, reopened when
settings change. llama.cpp gets every core, as in ``chatapp ask`` (``quiet_openmp_waits``).

``ModelSlot`` holds the backend (or why it failed to load) and an event that replies wait on, so
a prompt sent while the model loads simply waits for it. The app runs ``load`` in a thread
worker and shows its progress in the status line.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatapp.errors import ChatappError

if TYPE_CHECKING:
    from chatapp.config import Settings
    from chatapp.domain import CancelToken
    from chatapp.engine.base import Backend, LoadProgress

log = logging.getLogger(__name__)

BackendFactory = Callable[[], "Backend"]


def quiet_openmp_waits() -> None:
    """Let llama.cpp's OpenMP threads sleep, not spin, while they wait for each other (unless
    the user chose a policy): set before llama.cpp loads, read once when it does.

    The chat gives llama.cpp every core, as ``chatapp ask`` does. Spinning threads keep their
    cores while a partner thread waits for one; with the UI thread (or anything else) also
    wanting a core they collapsed: measured on 2 busy cores (load average ~7), 2 spinning
    threads gave 2–4 tok/s in the UI and 3–7 in ``ask``, 2 sleeping ones 34–37 in the UI and
    29–38 in ``ask`` (benchmarks/ui.py). chatapp's embedder sets the same for torch."""
    if "llama_cpp" in sys.modules:
        return
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


class ModelSlot:
    """The loaded backend, or the reason there is none; safe to read from any thread."""

    def __init__(self, factory: BackendFactory | None = None) -> None:
        self.factory = factory
        """Tests give one (a FakeBackend); otherwise the settings choose the backend."""
        self.backend: Backend | None = None
        self.error: str | None = None
        self.ready = threading.Event()

    @property
    def loading(self) -> bool:
        return not self.ready.is_set()

    def begin(self) -> None:
        """A (re)load is starting: replies from now on wait for it."""
        self.ready.clear()
        self.error = None

    def load(self, settings: Settings | None, progress: LoadProgress) -> str | None:
        """Close the old backend and open the new one (blocking; call from a worker thread).
        Returns the error shown to the user, or None when the model is ready."""
        old, self.backend = self.backend, None
        if old is not None:
            old.close()
        backend, error = None, None
        try:
            if self.factory is not None:
                backend = self.factory()
            else:
                from chatapp.engine.factory import create_backend

                assert settings is not None
                quiet_openmp_waits()
                backend = create_backend(settings, on_progress=progress)
        except ChatappError as exc:
            error = exc.message
        except Exception as exc:  # llama.cpp can fail in ways it does not name
            log.exception("model failed to load")
            error = f"{type(exc).__name__}: {exc}"
        self.backend, self.error = backend, error
        self.ready.set()
        return error

    def wait(self, cancel: CancelToken) -> Backend | None:
        """Block (in a worker) until the model is loaded; None if cancelled meanwhile."""
        while not self.ready.wait(0.05):
            if cancel.cancelled:
                return None
        if self.backend is None:
            raise ChatappError(f"no model loaded: {self.error or 'unknown problem'}")
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

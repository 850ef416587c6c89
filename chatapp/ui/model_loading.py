"""The model behind the chat UI: loaded off the UI thread, waited for by replies, reopened when
settings change.

llama.cpp gets every core for decoding and prompt batches, as in ``chatapp ask`` (the model
settings pass through unchanged). It used to get one core fewer, because the UI's own streaming
cost ~8 ms of CPU per token and two llama.cpp threads beside it collapsed on 2 cores; with the
frame clock the UI costs ~2.3 ms per token of the bundled model and the chat decodes at 0.86×
`ask`'s speed on a quiet 2-core machine (67 vs 79 tok/s; one thread gave 59). Sleeping OpenMP
waits (OMP_WAIT_POLICY=passive) were measured and not taken: 28 tok/s on a quiet machine.

``ModelSlot`` holds the backend (or why it failed to load) and an event that replies wait on, so
a prompt sent while the model loads simply waits for it. The app runs ``load`` in a thread
worker and shows its progress in the status line.
"""

from __future__ import annotations

import logging
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

"""The model behind the chat UI: loaded off the UI thread, waited for by replies, reopened when
settings change.

``ModelSlot`` holds the backend (or why it failed to load) and an event that replies wait on, so
a prompt sent while the model loads simply waits for it. The app runs ``load`` in a thread
worker and shows its progress in the status line.
"""

from __future__ import annotations

import logging
import os
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


def ui_model_settings(settings: Settings) -> Settings:
    """Settings for the in-process model next to the interface: unless the user chose a thread
    count, leave one core to the UI. llama.cpp's threads wait for each other at every step, so
    one of them sharing a core with the UI thread slows every token (measured on 2 cores: 2
    threads beside the UI gave 1–33 tok/s depending on other load, 1 thread a steady 25–31)."""
    if settings.model.n_threads is not None:
        return settings
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    adjusted = settings.model_copy(deep=True)
    adjusted.model.n_threads = max(1, cores - 1)
    return adjusted


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
                backend = create_backend(ui_model_settings(settings), on_progress=progress)
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

"""Messages that travel up to the app: model loading from its worker, replies ending."""

from __future__ import annotations

from textual.message import Message


class ModelLoadProgress(Message):
    """The model is loading: ``fraction`` 0..1 and what is happening."""

    def __init__(self, fraction: float, text: str) -> None:
        super().__init__()
        self.fraction = fraction
        self.text = text


class ModelLoaded(Message):
    """Loading ended: ``error`` is None when the model is ready."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class ReplyFinished(Message):
    """A reply ended (stored, stopped or failed): the app may now reopen the model."""

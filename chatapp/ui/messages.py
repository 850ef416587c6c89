"""Messages that cross from workers to the app (model loading)."""

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

"""The backend protocol every engine implements."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from chatapp.domain import CancelToken, ChatMessage, GenerationParams, ModelIdentity, StreamEvent
from chatapp.engine.reasoning import ThinkingSupport

LoadProgress = Callable[[float, str], None]
"""Called while a model loads with (fraction 0..1, what is happening)."""


@runtime_checkable
class Backend(Protocol):
    """Streams a reply to chat messages; cancellable between tokens.

    ``stream_chat`` yields ``TokenEvent``s (the answer) and ``ReasoningEvent``s (a thinking
    model's reasoning, never part of the answer; it comes before the answer) and ends with
    exactly one ``DoneEvent`` (also on cancellation, with finish_reason ``cancelled``). It
    raises ``ChatappError`` subclasses for problems the user can fix (a server that is down, a
    prompt that cannot fit). ``params`` given to ``format_chat``/``count_chat_tokens`` make them
    exact for that reply (the thinking switch changes the prompt); without, the template's
    defaults are used.
    """

    @property
    def identity(self) -> ModelIdentity: ...

    @property
    def n_ctx(self) -> int:
        """Context size in tokens that this backend was opened with."""
        ...

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[StreamEvent]: ...

    def count_tokens(self, text: str) -> int:
        """Tokens in plain text (no chat formatting)."""
        ...

    @property
    def thinking(self) -> ThinkingSupport:
        """Whether the model thinks, which switch and efforts its template takes."""
        ...

    def count_chat_tokens(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> int:
        """Tokens of the full prompt these messages format to, generation prompt included."""
        ...

    def format_chat(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> str:
        """The exact prompt text the model receives (after its chat template)."""
        ...

    def close(self) -> None: ...

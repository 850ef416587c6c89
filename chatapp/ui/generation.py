"""One reply at a time, generated in a thread worker and handed to the UI in batches.

The worker reads the session's events with ``consume`` (the same loop as the CLI and eval),
appends tokens to ``Reply.pieces``, a thinking model's reasoning to ``Reply.thoughts`` and the
tool loop's calls to ``Reply.tool_events`` (a list append is atomic) and posts only two messages to the
chat screen: started and ended. The screen takes what is new on a short timer, so the UI never
re-renders per token however fast the model is. Stopping sets the reply's CancelToken; the
engine checks it between tokens and the session keeps the partial reply as ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from textual.message import Message

from chatapp.errors import ChatappError

if TYPE_CHECKING:
    from textual.worker import Worker

    from chatapp.context import ContextPlan
    from chatapp.domain import CancelToken
    from chatapp.session import TurnEvent, TurnResult, TurnStarted
    from chatapp.session.turns import ToolCallFinished, ToolCallStarted
    from chatapp.storage import Message as StoredMessage

log = logging.getLogger(__name__)

RATE_WINDOW_S = 0.25
"""Tokens per second is shown once the reply has streamed at least this long."""


class Reply:
    """The reply being generated: its tokens so far and how it ended."""

    def __init__(self, conversation_id: int | None, kind: str, view_epoch: int) -> None:
        from chatapp.domain import CancelToken  # imported on first use: not before first frame

        self.conversation_id = conversation_id
        self.kind = kind
        self.view_epoch = view_epoch
        self.cancel = CancelToken()
        self.pieces: list[str] = []
        self.shown = 0
        self.thoughts: list[str] = []
        """A thinking model's reasoning so far (it streams before the answer)."""
        self.thoughts_shown = 0
        self.tool_events: list[tuple[int, ToolCallStarted | ToolCallFinished]] = []
        """The tool loop's calls as they are decided and as they end (shown folded), each
        with how many answer tokens had come before it."""
        self.tool_events_shown = 0
        self.thinking_started_at: float | None = None
        self.requested_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.user_message: StoredMessage | None = None
        self.plan: ContextPlan | None = None
        self.notes: tuple[str, ...] = ()
        self.finished: TurnResult | None = None
        self.error: str | None = None
        self.done = False
        self.ended = threading.Event()
        self.prompt_text = ""
        self.worker: Worker[None] | None = None

    @property
    def started(self) -> bool:
        return self.user_message is not None

    @property
    def token_count(self) -> int:
        return len(self.pieces)

    def take_unshown(self) -> tuple[str, int]:
        """Text produced since the last call, and how many tokens it holds."""
        end = len(self.pieces)
        text = "".join(self.pieces[self.shown : end])
        count = end - self.shown
        self.shown = end
        return text, count

    def take_text_until(self, end: int) -> str:
        """The text produced since the last call up to token ``end`` (a tool call's place)."""
        end = max(self.shown, min(end, len(self.pieces)))
        text = "".join(self.pieces[self.shown : end])
        self.shown = end
        return text

    def take_unshown_thoughts(self) -> str:
        """Reasoning produced since the last call."""
        end = len(self.thoughts)
        text = "".join(self.thoughts[self.thoughts_shown : end])
        self.thoughts_shown = end
        return text

    def thinking_seconds(self) -> float | None:
        """How long the model has thought (until its answer began); None if it has not."""
        started = self.thinking_started_at
        if started is None:
            return None
        return (self.first_token_at or time.perf_counter()) - started

    def text(self) -> str:
        return "".join(self.pieces)

    def tokens_per_s(self) -> float | None:
        first, last = self.first_token_at, self.last_token_at
        if first is None or last is None or last - first < RATE_WINDOW_S:
            return None
        return (len(self.pieces) - 1) / (last - first)

    def stop(self) -> None:
        self.cancel.cancel()


class ReplyStarted(Message):
    """The user message is stored and the context is planned; tokens follow."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply


class ReplyEnded(Message):
    """The worker is done: ``reply.finished`` holds the turn's result (its stored reply), or
    ``reply.error`` says why there is none (refused before it started, or the engine failed)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply


TurnRunner = Callable[["CancelToken"], Iterator["TurnEvent"]]


class MessageTarget(Protocol):
    """Where the worker posts ReplyStarted / ReplyEnded (the chat screen)."""

    def post_message(self, message: Message) -> bool: ...


def run_reply(target: MessageTarget, reply: Reply, run_turn: TurnRunner) -> None:
    """Body of the generation thread worker: drain the session's events into ``reply``."""
    from chatapp.session import consume

    def started(event: TurnStarted) -> None:
        reply.user_message = event.user_message
        reply.plan = event.plan
        reply.notes = event.notes
        if event.user_message is not None:
            reply.conversation_id = event.user_message.conversation_id
        target.post_message(ReplyStarted(reply))

    def token(text: str) -> None:
        now = time.perf_counter()
        if reply.first_token_at is None:
            reply.first_token_at = now
        reply.last_token_at = now
        reply.pieces.append(text)

    def thought(text: str) -> None:
        if reply.thinking_started_at is None:
            reply.thinking_started_at = time.perf_counter()
        reply.thoughts.append(text)

    events: Any = None
    try:
        events = run_turn(reply.cancel)
        reply.finished = consume(
            events,
            on_start=started,
            on_token=token,
            on_reasoning=thought,
            on_tool=lambda event: reply.tool_events.append((len(reply.pieces), event)),
        )
    except ChatappError as exc:
        reply.error = exc.message
    except Exception as exc:  # a bug must not take the UI down; it is logged and shown
        log.exception("generation failed")
        reply.error = f"unexpected error: {type(exc).__name__}: {exc}"
    finally:
        if events is not None and hasattr(events, "close"):
            events.close()
        reply.done = True
        reply.ended.set()
        target.post_message(ReplyEnded(reply))

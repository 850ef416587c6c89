"""The one place that turns a user turn into model input and persists the result.

A ChatSession belongs to one conversation. ``send`` stores the user message, fits system prompt +
history (+ sources, + template text) into the context budget, streams the reply from the backend,
and stores the assistant message with its model identity, generation settings, seed, template,
sources, stats and status (complete | interrupted | error). The partial reply is kept when the
caller cancels, closes the stream early, or presses Ctrl+C.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from chatapp.context import ContextPlan, fit_to_context
from chatapp.domain import (
    CancelToken,
    ChatMessage,
    DoneEvent,
    GenerationParams,
    GenerationStats,
    TokenEvent,
)
from chatapp.engine.base import Backend
from chatapp.errors import ChatappError, UsageError
from chatapp.storage import ConversationStore, Message

TITLE_CHARS = 60


@dataclass(frozen=True)
class TurnStarted:
    """The user message is stored and the prompt is planned; tokens follow."""

    user_message: Message
    plan: ContextPlan


@dataclass(frozen=True)
class TurnFinished:
    """The assistant message is stored; ``finish_reason`` says why it ended."""

    message: Message
    stats: GenerationStats
    finish_reason: str
    error: str | None = None


TurnEvent = TurnStarted | TokenEvent | TurnFinished


@dataclass
class TurnOptions:
    """Per-turn extras. ``model_text`` replaces the user text in what the model receives for this
    turn only (e.g. the question wrapped with numbered sources); history keeps ``text``."""

    model_text: str | None = None
    template: str | None = None
    sources: list[dict[str, Any]] | None = None
    system_prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    examples: list[ChatMessage] = field(default_factory=list)
    """Few-shot user/assistant turns (from a template) placed just before this turn; never
    stored, and dropped after older history when the context is short."""


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


class ChatSession:
    """Conversation-level operations on top of a backend and the store."""

    def __init__(
        self,
        backend: Backend | Callable[[], Backend],
        store: ConversationStore,
        *,
        conversation_id: int | None = None,
        system_prompt: str | None = None,
        params: GenerationParams | None = None,
    ) -> None:
        self._backend = backend
        self.store = store
        self.conversation_id = conversation_id
        self.system_prompt = system_prompt
        self.params = params or GenerationParams()
        if conversation_id is not None:
            conversation = store.get_conversation(conversation_id)
            if conversation.system_prompt is not None and system_prompt is None:
                self.system_prompt = conversation.system_prompt

    @property
    def backend(self) -> Backend:
        """The backend, created on first use when a factory was given (loads lazily)."""
        if callable(self._backend) and not isinstance(self._backend, Backend):
            self._backend = self._backend()
        return self._backend  # type: ignore[return-value]

    def set_backend(self, backend: Backend | Callable[[], Backend]) -> None:
        self._backend = backend

    # -- reading --------------------------------------------------------------------------

    def thread(self) -> list[Message]:
        if self.conversation_id is None:
            return []
        return self.store.thread(self.conversation_id)

    def plan(
        self, text: str, options: TurnOptions | None = None, parent_id: int | None = None
    ) -> ContextPlan:
        """What would be sent for this turn (used for previews and by ``send``)."""
        options = options or TurnOptions()
        params = self._params(options)
        history = self._history_before(parent_id) + list(options.examples)
        system_text = (
            options.system_prompt if options.system_prompt is not None else (self.system_prompt)
        )
        system = ChatMessage("system", system_text) if system_text else None
        turn = ChatMessage("user", options.model_text if options.model_text is not None else text)
        backend = self.backend
        return fit_to_context(
            system,
            history,
            turn,
            count_chat_tokens=backend.count_chat_tokens,
            n_ctx=backend.n_ctx,
            max_tokens=params.max_tokens,
        )

    # -- writing --------------------------------------------------------------------------

    def send(
        self,
        text: str,
        options: TurnOptions | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[TurnEvent]:
        """Send a new user turn at the end of the active branch and stream the reply."""
        if not text.strip():
            raise UsageError("empty prompt: nothing to send")
        options = options or TurnOptions()
        self._ensure_conversation(text, options)
        assert self.conversation_id is not None
        parent = self.store.get_conversation(self.conversation_id).active_leaf_id
        yield from self._turn(text, options, cancel, parent_id=parent)

    def regenerate(
        self, options: TurnOptions | None = None, cancel: CancelToken | None = None
    ) -> Iterator[TurnEvent]:
        """A new reply to the last user message, as a sibling branch of the old reply."""
        thread = self.thread()
        last_user = next((m for m in reversed(thread) if m.role == "user"), None)
        if last_user is None:
            raise UsageError("nothing to regenerate: the conversation has no user message")
        options = options or TurnOptions(template=last_user.template)
        yield from self._reply(last_user, options, cancel)

    def edit(
        self,
        user_message_id: int,
        new_text: str,
        options: TurnOptions | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[TurnEvent]:
        """Resend an earlier user message with new text, as a sibling branch of the original."""
        original = self.store.get_message(user_message_id)
        if original.role != "user" or original.conversation_id != self.conversation_id:
            raise UsageError(f"message {user_message_id}: not a user message of this conversation")
        if not new_text.strip():
            raise UsageError("empty prompt: nothing to send")
        yield from self._turn(new_text, options or TurnOptions(), cancel, original.parent_id)

    # -- internals ------------------------------------------------------------------------

    def _params(self, options: TurnOptions) -> GenerationParams:
        params = self.params.replace(**options.params)
        if params.seed is None:
            # Record the seed actually used so a reply can be reproduced.
            params.seed = random.randint(0, 2**31 - 1)
        return params

    def _ensure_conversation(self, text: str, options: TurnOptions) -> None:
        if self.conversation_id is None:
            conversation = self.store.create_conversation(
                title_from(text),
                system_prompt=self.system_prompt,
                model=self.backend.identity.name,
                template=options.template,
            )
            self.conversation_id = conversation.id

    def _history_before(self, parent_id: int | None) -> list[ChatMessage]:
        if self.conversation_id is None or parent_id is None:
            return []
        chain = self.store.thread(self.conversation_id, parent_id)
        return [
            ChatMessage(m.role, m.content)  # type: ignore[arg-type]
            for m in chain
            if m.role in ("user", "assistant") and m.content and m.status != "error"
        ]

    def _turn(
        self, text: str, options: TurnOptions, cancel: CancelToken | None, parent_id: int | None
    ) -> Iterator[TurnEvent]:
        assert self.conversation_id is not None
        # Plan before storing, so a prompt that cannot fit leaves nothing half-written.
        plan = self.plan(text, options, parent_id)
        user = self.store.add_message(
            self.conversation_id,
            "user",
            text,
            parent_id=parent_id,
            template=options.template,
        )
        yield from self._reply(user, options, cancel, plan)

    def _reply(
        self,
        user: Message,
        options: TurnOptions,
        cancel: CancelToken | None,
        plan: ContextPlan | None = None,
    ) -> Iterator[TurnEvent]:
        assert self.conversation_id is not None
        params = self._params(options)
        if plan is None:  # regenerate: the user turn is already stored, plan it now
            plan = self.plan(user.content, options, user.parent_id)
        params.max_tokens = plan.max_reply_tokens
        yield TurnStarted(user, plan)
        backend = self.backend
        pieces: list[str] = []
        stats = GenerationStats(prompt_tokens=plan.prompt_tokens, n_ctx=plan.n_ctx)
        finish = "error"
        error: str | None = None
        try:
            for event in backend.stream_chat(plan.messages, params, cancel):
                if isinstance(event, TokenEvent):
                    pieces.append(event.text)
                    yield event
                elif isinstance(event, DoneEvent):
                    stats, finish, error = event.stats, event.finish_reason, event.error
        except (KeyboardInterrupt, GeneratorExit):
            finish = "cancelled"
            raise
        except ChatappError as exc:
            finish, error = "error", exc.message
            raise
        finally:
            stats.dropped_messages = plan.dropped_messages
            stats.n_ctx = plan.n_ctx
            status = {"cancelled": "interrupted", "error": "error"}.get(finish, "complete")
            message = self.store.add_message(
                self.conversation_id,
                "assistant",
                "".join(pieces),
                parent_id=user.id,
                status=status,
                model=backend.identity.to_dict(),
                params=params.to_dict(),
                seed=params.seed,
                template=options.template,
                sources=options.sources,
                stats=stats.to_dict(),
                error=error,
            )
            self.last_message = message
        yield TurnFinished(message, stats, finish, error)

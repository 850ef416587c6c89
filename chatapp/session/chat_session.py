"""The one place that turns a user turn into model input, streams the reply and stores it.

A ChatSession belongs to one conversation (or to none yet). Every front end — the chat UI, the
template picker, ``chatapp ask`` (also with ``-C``), ``chatapp run`` and ``chatapp eval`` —
hands it a ``TurnRequest`` and reads the events (``consume``) up to the ``TurnResult``:

1. prepare (chatapp.session.preparation: system prompt, template, retrieval, the one budget) —
   a turn that cannot fit raises before anything is stored;
2. store the user message with the request (when storing), then the reply row as it starts;
3. stream: tokens go to the front end as they come and into the store every ~0.5 s;
4. finish: the reply's text, status (complete | interrupted | error), stats, and the record of
   what produced it (request, retrieval settings, plan summary, citation check).

A refusal — the documents don't contain the answer — is stored and returned like a reply, with
``kind`` "refusal" and no model call. Ctrl+C, SIGTERM, SIGHUP, closing the stream early or the
cancel token end the reply as ``interrupted`` with its text kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from chatapp.domain import (
    CancelToken,
    ChatMessage,
    GenerationParams,
)
from chatapp.engine.base import Backend
from chatapp.errors import UsageError
from chatapp.session.preparation import PreparedTurn, prepare_turn
from chatapp.session.reply_run import ReplyRun
from chatapp.session.tool_loop import ToolUse, history_with_tools
from chatapp.session.turns import TurnEvent, TurnRequest

if TYPE_CHECKING:
    from chatapp.config import Settings
    from chatapp.prompting.schema import Template
    from chatapp.retrieval.search.grounding import DocumentRetriever
    from chatapp.storage import ConversationStore, Message

log = logging.getLogger(__name__)

TITLE_CHARS = 60


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


class ChatSession:
    """Turns of one conversation on top of a backend, the store and (optionally) documents."""

    def __init__(
        self,
        backend: Backend | Callable[[], Backend],
        store: ConversationStore | None,
        *,
        conversation_id: int | None = None,
        system_prompt: str | None = None,
        params: GenerationParams | None = None,
        retriever: DocumentRetriever | None = None,
        settings: Settings | None = None,
        templates: Mapping[str, Template] | None = None,
        tools: ToolUse | None = None,
    ) -> None:
        self._backend = backend
        self.tools = tools
        """Tools the turns may offer (None: no tool use)."""
        self.templates = dict(templates or {})
        """Templates already loaded, by name (others are looked up by ``get_template``)."""
        self.store = store
        self.conversation_id = conversation_id
        self.system_prompt = system_prompt
        self.params = params or GenerationParams()
        self._retriever = retriever
        self._own_retriever = False
        self._owns_backend = False
        self._settings = settings
        if conversation_id is not None and store is not None:
            conversation = store.get_conversation(conversation_id)
            if conversation.system_prompt is not None and system_prompt is None:
                self.system_prompt = conversation.system_prompt

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        backend: Backend | Callable[[], Backend],
        store: ConversationStore | None,
        *,
        conversation_id: int | None = None,
        system_prompt: str | None = None,
        retriever: DocumentRetriever | None = None,
    ) -> ChatSession:
        """A session as the front ends open one: generation settings from ``[generation]``; the
        system prompt given, else the conversation's own, else ``chat.system_prompt`` for a new
        conversation; documents found through ``retriever`` (made on first use if not given)."""
        from chatapp.engine.factory import generation_params

        if system_prompt is None and conversation_id is None:
            system_prompt = settings.chat.system_prompt or None
        return cls(
            backend,
            store,
            conversation_id=conversation_id,
            system_prompt=system_prompt,
            params=generation_params(settings),
            retriever=retriever,
            settings=settings,
        )

    @property
    def retriever(self) -> DocumentRetriever | None:
        """Finds sources for grounded turns; made from the settings on first use."""
        if self._retriever is None and self._settings is not None:
            from chatapp.retrieval.search.grounding import DocumentRetriever

            self._retriever = DocumentRetriever(self._settings)
            self._own_retriever = True
        return self._retriever

    @property
    def backend(self) -> Backend:
        """The backend, created on first use when a factory was given (loads lazily)."""
        if callable(self._backend) and not isinstance(self._backend, Backend):
            self._backend = self._backend()
            self._owns_backend = True
        return self._backend  # type: ignore[return-value]

    def close(self) -> None:
        """Close what the session opened itself: a backend it made from its factory (which
        then finishes writing its KV state) and a retriever made from the settings."""
        if self._owns_backend and isinstance(self._backend, Backend):
            self._backend.close()
        if self._own_retriever and self._retriever is not None:
            self._retriever.close()

    # -- reading --------------------------------------------------------------------------

    def thread(self) -> list[Message]:
        if self.conversation_id is None or self.store is None:
            return []
        return self.store.thread(self.conversation_id)

    def leaf_id(self) -> int | None:
        if self.conversation_id is None or self.store is None:
            return None
        return self.store.get_conversation(self.conversation_id).active_leaf_id

    def _history_before(self, parent_id: int | None) -> list[ChatMessage]:
        if self.conversation_id is None or parent_id is None or self.store is None:
            return []
        return history_with_tools(self.store.thread(self.conversation_id, parent_id))

    def _base_params(self, request: TurnRequest, problems: list[str]) -> GenerationParams:
        """The session's settings with the tools this request offers."""
        if self.tools is None:
            return self.params
        specs, choice, constrain = self.tools.offer(request, self.backend.identity, problems)
        return self.params.replace(tools=specs, tool_choice=choice, constrain_tools=constrain)

    def prepare(self, request: TurnRequest, parent_id: int | None = None) -> PreparedTurn:
        """What would be sent for ``request`` after ``parent_id`` (previews use this too)."""
        problems: list[str] = []
        prepared = prepare_turn(
            request,
            backend=self.backend,
            history=self._history_before(parent_id),
            system_prompt=self.system_prompt,
            base_params=self._base_params(request, problems),
            retriever=self.retriever,
            templates=self.templates,
        )
        prepared.notes[:0] = problems
        return prepared

    def preview(self, request: TurnRequest) -> str:
        """The exact prompt text the model would receive now for ``request``."""
        prepared = self.prepare(request, self.leaf_id())
        if prepared.plan is None:
            return prepared.refusal or ""
        return self.backend.format_chat(prepared.plan.messages)

    @staticmethod
    def stored_request(message: Message) -> TurnRequest:
        """The request that produced a stored user message (plain chat for old rows)."""
        return TurnRequest.from_dict(message.content, (message.turn or {}).get("request"))

    # -- writing --------------------------------------------------------------------------

    def send(self, request: TurnRequest, cancel: CancelToken | None = None) -> Iterator[TurnEvent]:
        """A new user turn at the end of the active branch, and its reply."""
        parent = self.leaf_id()
        prepared = self.prepare(request, parent)  # before storing: a turn that can't fit
        user = self._store_user(prepared, parent)  # leaves no conversation behind
        yield from self._reply(prepared, user, cancel)

    def regenerate(
        self, cancel: CancelToken | None = None, request: TurnRequest | None = None
    ) -> Iterator[TurnEvent]:
        """A new reply to the last user message, as a sibling branch of the old reply, made by
        the same request (template, variables, collection) unless another is given."""
        last_user = next((m for m in reversed(self.thread()) if m.role == "user"), None)
        if last_user is None:
            raise UsageError("nothing to regenerate: the conversation has no user message")
        request = request or self.stored_request(last_user)
        prepared = self.prepare(request, last_user.parent_id)
        yield from self._reply(prepared, last_user, cancel)

    def edit(
        self, user_message_id: int, new_text: str, cancel: CancelToken | None = None
    ) -> Iterator[TurnEvent]:
        """Resend an earlier user message with new text (same template and collection), as a
        sibling branch of the original."""
        assert self.store is not None
        original = self.store.get_message(user_message_id)
        if original.role != "user" or original.conversation_id != self.conversation_id:
            raise UsageError(f"message {user_message_id}: not a user message of this conversation")
        if not new_text.strip():
            raise UsageError("empty prompt: nothing to send")
        prepared = self.prepare(
            self.stored_request(original).with_text(new_text), original.parent_id
        )
        user = self._store_user(prepared, original.parent_id)
        yield from self._reply(prepared, user, cancel)

    # -- internals ------------------------------------------------------------------------

    def _store_user(self, prepared: PreparedTurn, parent_id: int | None) -> Message | None:
        request = prepared.request
        if not request.store or self.store is None:
            return None
        template = request.template.name if request.template else None
        content = request.text
        record: dict[str, Any] = {"request": request.to_dict()}
        if not content.strip() and prepared.template_turn is not None:
            # A template without an input: show what was asked, remember the (empty) input.
            content = prepared.template_turn.user_text
            record["request"]["text"] = request.text
        model = self.backend.identity.name  # loaded before the write transaction starts
        created = self.conversation_id is None
        try:
            with self.store.all_or_nothing():  # a first turn not stored leaves no conversation
                return self._store_user_rows(prepared, content, template, record, parent_id, model)
        except BaseException:
            if created:
                self.conversation_id = None
            raise

    def _store_user_rows(
        self,
        prepared: PreparedTurn,
        content: str,
        template: str | None,
        record: dict[str, Any],
        parent_id: int | None,
        model: str,
    ) -> Message:
        assert self.store is not None
        if self.conversation_id is None:
            conversation = self.store.create_conversation(
                title_from(content),
                system_prompt=self.system_prompt,
                model=model,
                template=template,
                collection=prepared.request.collection,
            )
            self.conversation_id = conversation.id
        else:
            self.store.update_conversation(
                self.conversation_id, template=template, collection=prepared.request.collection
            )
        return self.store.add_message(
            self.conversation_id,
            "user",
            content,
            parent_id=parent_id,
            template=template,
            turn=record,
        )

    def _reply(
        self, prepared: PreparedTurn, user: Message | None, cancel: CancelToken | None
    ) -> Iterator[TurnEvent]:
        run = ReplyRun(
            self.backend, self.store, self.conversation_id, lambda: self.retriever, self.tools
        )
        yield from run.events(prepared, user, cancel)

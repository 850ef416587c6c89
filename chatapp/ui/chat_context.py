"""What the chat's screens work with, instead of reaching into the App.

``ChatContext`` holds the settings, the conversation store, the model slot and the document
retriever (one per app, so collections stay loaded between turns), and opens a ``ChatSession``
for a conversation — the same pipeline ``chatapp ask`` uses. Screens receive it when they are
made; tests build one around a FakeBackend and a store in a temp dir.

``TurnChoices`` is the chat screen's state for the next turns: the collection picked, whether
documents are on, and thinking switched on or off (or a reasoning effort) for a model whose
template can. It becomes part of each ``TurnRequest`` (so it is recorded with each reply).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatapp.ui.model_loading import BackendFactory, ModelSlot

if TYPE_CHECKING:
    from chatapp.config import Settings
    from chatapp.domain import CancelToken
    from chatapp.engine.base import Backend
    from chatapp.engine.reasoning import ThinkingSupport
    from chatapp.retrieval.search.grounding import DocumentRetriever
    from chatapp.session import ChatSession, TurnRequest
    from chatapp.session.tool_loop import ToolUse
    from chatapp.storage import ConversationStore
    from chatapp.tools.approval import Approver


@dataclass
class TurnChoices:
    """The choices that shape the next turns (screen state, passed down to each request)."""

    collection: str | None = None
    documents: bool = False
    """Answer from ``collection`` (False: documents off, the collection stays chosen)."""

    thinking: dict[str, str] = field(default_factory=dict)
    """Generation overrides chosen with the thinking toggle (``thinking``/``reasoning_effort``);
    empty: the settings' ``generation.thinking`` and ``reasoning_effort``."""

    tools: list[str] | None = None
    """Tool servers (or ``SERVER.TOOL`` names) the next turns offer the model, chosen with the
    tools toggle (F5); None: the settings' ``tools.offered``."""

    @property
    def active_collection(self) -> str | None:
        return self.collection if self.documents else None

    def offered_tools(self, settings: Settings | None) -> list[str]:
        """What the next turns offer (the header's ``tools`` field)."""
        if self.tools is not None:
            return list(self.tools)
        return list(settings.tools.offered) if settings is not None else []

    def request(self, text: str) -> TurnRequest:
        from chatapp.session import TurnRequest

        tools = list(self.tools) if self.tools is not None else None
        return TurnRequest(
            text, collection=self.active_collection, params=dict(self.thinking), tools=tools
        )

    def thinking_state(self, support: ThinkingSupport, settings: Settings | None) -> str | None:
        """What the next reply does about thinking, for the header (None: the model never
        thinks)."""
        if not support.thinks:
            return None
        generation = settings.generation if settings is not None else None
        effort = self.thinking.get("reasoning_effort") or (
            generation.reasoning_effort if generation is not None else None
        )
        if support.can_switch:
            chosen = self.thinking.get("thinking") or (
                generation.thinking if generation is not None else "default"
            )
            on = support.default_on if chosen == "default" else chosen == "on"
            state = "on" if on else "off"
        else:
            state = "always"
        if support.efforts and state != "off":
            state += f", effort {effort or 'default'}"
        return state

    def toggle_thinking(self, support: ThinkingSupport, settings: Settings | None) -> str:
        """Switch thinking for the next turns: on ↔ off where the template has a switch, else
        the next reasoning effort. Returns what to tell the user."""
        state = self.thinking_state(support, settings)
        if state is None:
            return "This model does not think before it answers."
        if support.can_switch:
            turned = "off" if state.startswith("on") else "on"
            self.thinking["thinking"] = turned
            return f"Thinking {turned} for the next replies."
        if support.efforts:
            current = self.thinking.get("reasoning_effort")
            efforts = support.efforts
            index = efforts.index(current) + 1 if current in efforts else 0
            self.thinking["reasoning_effort"] = efforts[index % len(efforts)]
            return f"Reasoning effort {self.thinking['reasoning_effort']} for the next replies."
        return "This model always thinks: its chat template has no switch to turn it off."


class ChatContext:
    """Settings, store, model and documents of one running chat app (see module docstring)."""

    def __init__(
        self,
        settings: Settings | None = None,
        store: ConversationStore | None = None,
        backend_factory: BackendFactory | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.model = ModelSlot(backend_factory)
        self._retriever: DocumentRetriever | None = None
        self._lock = threading.Lock()
        self.approver: Approver | None = None
        """Asks the user about a tool call (the chat screen's approval card)."""
        self.remember_rule: Callable[[str, str], None] | None = None
        """Stores an "always allow" answer as a rule in the settings."""
        self.tools_collection: str | None = None
        """The collection ``documents.search`` searches (the chat's chosen one)."""
        self.tools_problem: str | None = None
        """Why the MCP servers are left out (a bad ``mcp.json``), said once in the chat."""
        self._tools: ToolUse | None = None
        self._tools_lock = threading.Lock()

    @property
    def retriever(self) -> DocumentRetriever | None:
        """Finds sources in the user's collections (made on first use)."""
        with self._lock:
            if self._retriever is None and self.settings is not None:
                from chatapp.retrieval.search.grounding import DocumentRetriever

                self._retriever = DocumentRetriever(self.settings)
            return self._retriever

    def use_settings(self, settings: Settings) -> None:
        """New settings from now on (the next turn's session, the retriever's thresholds, the
        tool rules: a rule revoked in settings asks again from the next call)."""
        self.settings = settings
        with self._lock:
            if self._retriever is not None:
                self._retriever.settings = settings
        with self._tools_lock:
            if self._tools is not None:
                self._tools.gate.rules = dict(settings.tools.rules)
                self._tools.gate.allow_read_only = settings.tools.allow_read_only
                self._tools.offered = list(settings.tools.offered)
                self._tools.max_steps = settings.tools.max_steps

    @property
    def tools(self) -> ToolUse | None:
        """The tools the chat's turns may offer: built once per app, on first use (listing the
        servers reads ``mcp.json``; an MCP server starts only when its tools are first listed
        or called, and stops when the app closes). A bad ``mcp.json`` leaves its servers out
        (``tools_problem`` says why)."""
        settings = self.settings
        if settings is None:
            return None
        with self._tools_lock:
            if self._tools is None:
                self._tools = self._build_tools(settings)
            documents = self._tools.registry.provider("documents")
            collection = self.tools_collection or settings.retrieval.collection
            if documents is not None and hasattr(documents, "collection"):
                documents.collection = collection
            return self._tools

    def _build_tools(self, settings: Settings) -> ToolUse:
        from chatapp.errors import ChatappError
        from chatapp.session.tool_loop import ToolUse
        from chatapp.tools.approval import ToolGate
        from chatapp.tools.setup import build_registry

        retriever = self.retriever
        search = retriever.retrieve if retriever is not None else None
        try:
            return ToolUse.from_settings(
                settings, approver=self.approver, search=search, remember=self.remember_rule
            )
        except ChatappError as exc:  # mcp.json cannot be read: the built-ins still work
            self.tools_problem = f"{exc.message} (its tool servers are left out)"
        gate = ToolGate(
            rules=dict(settings.tools.rules),
            allow_read_only=settings.tools.allow_read_only,
            approver=self.approver,
            remember=self.remember_rule,  # type: ignore[arg-type]
        )
        return ToolUse(
            build_registry(settings, search=search, include_mcp=False),
            gate,
            offered=list(settings.tools.offered),
            max_steps=settings.tools.max_steps,
            constrain=settings.tools.constrain,
        )

    def session(self, conversation_id: int | None) -> ChatSession:
        """A session for ``conversation_id`` (None: a new conversation) on the loaded model."""
        from chatapp.session import ChatSession

        assert self.settings is not None
        session = ChatSession.from_settings(
            self.settings,
            self._backend,
            self.store,
            conversation_id=conversation_id,
            retriever=self.retriever,
        )
        session.tools = self.tools
        return session

    def _backend(self) -> Backend:
        backend = self.model.backend
        if backend is None:
            from chatapp.errors import ChatappError

            raise ChatappError(f"no model loaded: {self.model.error or 'still loading'}")
        return backend

    def wait_for_model(self, cancel: CancelToken) -> bool:
        """Block (in a worker) until the model is ready; False when cancelled meanwhile."""
        return self.model.wait(cancel) is not None

    def close(self, *, close_store: bool) -> None:
        with self._tools_lock:
            if self._tools is not None:
                self._tools.close()  # MCP servers stop with the app
                self._tools = None
        self.model.close()
        with self._lock:
            if self._retriever is not None:
                self._retriever.close()
                self._retriever = None
        if close_store and self.store is not None:
            self.store.close()

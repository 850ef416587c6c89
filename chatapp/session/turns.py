"""What a front end asks for (``TurnRequest``), what it gets back (``TurnResult``), the events in
between, and ``consume``: the one loop that reads a turn's events for the CLI, eval and the UI.

A request names everything that shapes a turn besides the conversation itself: the text, a
prompt template with its variables, a document collection to answer from, per-turn generation
overrides, and whether to store the turn at all. It is stored (without the text, which is the
user message) with the user message and the reply, so regenerating or editing a turn after a
restart runs the same turn again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from chatapp.domain import (
    GenerationStats,
    ReasoningEvent,
    Source,
    TokenEvent,
    ToolCall,
    ToolResult,
)

if TYPE_CHECKING:
    from chatapp.context import ContextPlan
    from chatapp.prompting.constraints import ParsedOutput
    from chatapp.retrieval.search.citations import CitationReport
    from chatapp.storage import Message

TurnKind = Literal["reply", "refusal"]


@dataclass
class TemplateCall:
    """A prompt template and how to fill it. The request's text is the template's input."""

    name: str
    variables: dict[str, str] = field(default_factory=dict)
    shots: int | None = None
    select: str | None = None
    constrain: bool | None = None
    extra_examples: list[dict[str, Any]] = field(default_factory=list)
    """More demonstrations (``{"input", "output", "reasoning"?}``) besides the template's own."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "variables": dict(self.variables)}
        for key in ("shots", "select", "constrain"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.extra_examples:
            data["extra_examples"] = list(self.extra_examples)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateCall:
        return cls(
            name=str(data["name"]),
            variables={str(k): str(v) for k, v in (data.get("variables") or {}).items()},
            shots=data.get("shots"),
            select=data.get("select"),
            constrain=data.get("constrain"),
            extra_examples=list(data.get("extra_examples") or []),
        )


@dataclass
class TurnRequest:
    """One user turn as a front end asks for it (see the module docstring)."""

    text: str
    template: TemplateCall | None = None
    collection: str | None = None
    """Answer from this document collection (None: documents off)."""
    top_k: int | None = None
    """How many sources to look for (None: ``retrieval.top_k``)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Generation overrides for this turn only (temperature, seed, max_tokens…)."""
    system_prompt: str | None = None
    """A system prompt for this turn only (None: the template's, else the conversation's)."""
    store: bool = True
    """False: nothing is written (``chatapp eval``, ``chatapp run --no-save``)."""
    tools: list[str] | None = None
    """Tool servers or ``SERVER.TOOL`` names offered to the model (None: ``tools.offered``;
    empty: none)."""
    tool_choice: str | None = None
    """"auto" (None), "required", "none" or one tool's name, as in the OpenAI API."""

    def to_dict(self) -> dict[str, Any]:
        """The stored form (the text itself is the user message)."""
        data: dict[str, Any] = {}
        if self.template is not None:
            data["template"] = self.template.to_dict()
        if self.collection is not None:
            data["collection"] = self.collection
        if self.top_k is not None:
            data["top_k"] = self.top_k
        if self.params:
            data["params"] = dict(self.params)
        if self.system_prompt is not None:
            data["system_prompt"] = self.system_prompt
        if self.tools is not None:
            data["tools"] = list(self.tools)
        if self.tool_choice is not None:
            data["tool_choice"] = self.tool_choice
        return data

    @classmethod
    def from_dict(cls, text: str, data: dict[str, Any] | None) -> TurnRequest:
        data = data or {}
        template = data.get("template")
        return cls(
            text=str(data.get("text", text)),
            template=TemplateCall.from_dict(template) if template else None,
            collection=data.get("collection"),
            top_k=data.get("top_k"),
            params=dict(data.get("params") or {}),
            system_prompt=data.get("system_prompt"),
            tools=[str(t) for t in data["tools"]] if isinstance(data.get("tools"), list) else None,
            tool_choice=data.get("tool_choice")
            if isinstance(data.get("tool_choice"), str)
            else None,
        )

    def with_text(self, text: str) -> TurnRequest:
        return replace(self, text=text)


@dataclass
class TurnResult:
    """How a turn ended: the reply (or refusal), what was stored, what it cost, and checks."""

    request: TurnRequest
    kind: TurnKind = "reply"
    text: str = ""
    """The answer (a thinking model's reasoning is apart, in ``reasoning``)."""
    reasoning: str = ""
    finish_reason: str = "stop"
    """stop | length | cancelled | error | refused (no relevant sources: the model was not asked)."""
    error: str | None = None
    stats: GenerationStats = field(default_factory=GenerationStats)
    model: str = ""
    plan: ContextPlan | None = None
    user_message: Message | None = None
    message: Message | None = None
    """The stored reply (None when the request was not stored)."""
    sources: list[Source] = field(default_factory=list)
    """The sources the model was given, numbered ``n`` as the reply cites them."""
    retrieval: dict[str, Any] | None = None
    """How the sources were chosen: collection, embedder, top_k, threshold, best similarity."""
    citations: CitationReport | None = None
    parsed: ParsedOutput | None = None
    """A template turn's reply made usable (label, JSON…) and checked."""
    constrained: bool = False
    """The reply was constrained by the template's grammar or JSON schema."""
    notes: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Every call the model asked for in this turn, in order."""
    tool_results: list[ToolResult] = field(default_factory=list)
    """Every tool call the turn made, in order, with what it gave (denied ones included)."""
    steps: int = 1
    """Model calls the turn took (more than one when tools were called)."""

    @property
    def conversation_id(self) -> int | None:
        for message in (self.message, self.user_message):
            if message is not None:
                return message.conversation_id
        return None

    @property
    def status(self) -> str:
        return {"cancelled": "interrupted", "error": "error"}.get(self.finish_reason, "complete")


@dataclass(frozen=True)
class TurnStarted:
    """The turn is prepared (and its user message stored); reply tokens follow."""

    request: TurnRequest
    user_message: Message | None
    plan: ContextPlan | None
    """None for a refusal (nothing is sent to the model)."""
    notes: tuple[str, ...] = ()
    """What the budget left out, and other things worth telling the user before the reply."""


@dataclass(frozen=True)
class TurnFinished:
    """The reply is stored (when storing); the last event of every turn."""

    result: TurnResult


@dataclass(frozen=True)
class ToolCallStarted:
    """The model asked for a call; ``allowed`` and ``reason`` say what the gate decided (a
    call that is not allowed is not run, and the model is told)."""

    call: ToolCall
    server: str
    allowed: bool
    reason: str


@dataclass(frozen=True)
class ToolCallFinished:
    """A call ran (or was denied): its result as the model gets it."""

    call: ToolCall
    result: ToolResult


TurnEvent = (
    TurnStarted | TokenEvent | ReasoningEvent | ToolCallStarted | ToolCallFinished | TurnFinished
)


def consume(
    events: Iterable[TurnEvent],
    *,
    on_start: Callable[[TurnStarted], None] | None = None,
    on_token: Callable[[str], None] | None = None,
    on_reasoning: Callable[[str], None] | None = None,
    on_tool: Callable[[ToolCallStarted | ToolCallFinished], None] | None = None,
) -> TurnResult:
    """Read a turn's events to the end: the one loop every front end uses. ``on_start`` sees the
        prepared turn, ``on_token`` every piece of the answer as it arrives, ``on_reasoning`` every
        piece of a thinking model's reasoning (which comes before the answer), ``on_tool`` each
    tool call as it is decided and as it ends."""
    result: TurnResult | None = None
    for event in events:
        if isinstance(event, TokenEvent):
            if on_token is not None:
                on_token(event.text)
        elif isinstance(event, ReasoningEvent):
            if on_reasoning is not None:
                on_reasoning(event.text)
        elif isinstance(event, TurnStarted):
            if on_start is not None:
                on_start(event)
        elif isinstance(event, ToolCallStarted | ToolCallFinished):
            if on_tool is not None:
                on_tool(event)
        elif isinstance(event, TurnFinished):
            result = event.result
    if result is None:  # the session always ends with TurnFinished; only a bug gets here
        raise RuntimeError("turn ended without a result")
    return result

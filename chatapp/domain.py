"""Domain types shared by every layer: chat messages, generation parameters, stream events,
per-reply statistics, model identity, and the sources retrieval gives a grounded turn. Plain
dataclasses; no I/O, no heavy imports."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
MessageStatus = Literal["complete", "interrupted", "error"]
FinishReason = Literal["stop", "length", "cancelled", "error", "tool_calls"]
Thinking = Literal["default", "on", "off"]


@dataclass(frozen=True)
class ChatMessage:
    """One turn as the model sees it. ``reasoning`` is an assistant turn's thinking, handed to
    chat templates that read it (most drop it from history); leave it None to send none."""

    role: Role
    content: str
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    """An assistant turn's calls to tools (its ``content`` may be empty)."""
    tool_call_id: str | None = None
    """A ``tool`` turn: the id of the call whose result ``content`` is."""
    name: str | None = None
    """A ``tool`` turn: the tool's name (``SERVER.TOOL``)."""

    def to_dict(self) -> dict[str, Any]:
        """The message as chat templates and OpenAI-compatible servers take it."""
        item: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.reasoning is not None:
            # The names chat templates read it under (Qwen3/DeepSeek, gpt-oss, others).
            item.update(reasoning_content=self.reasoning, thinking=self.reasoning)
        if self.tool_calls:
            item["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            item["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            item["name"] = self.name
        return item


@dataclass
class GenerationParams:
    """Sampling and stopping settings for one reply. ``grammar`` is llama.cpp GBNF text;
    ``json_schema`` constrains the output to a JSON schema (backends compile it)."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    grammar: str | None = None
    json_schema: dict[str, Any] | None = None
    thinking: Thinking = "default"
    """For models that can think before answering: "on" / "off" set the chat template's switch
    (``enable_thinking``…); "default" keeps the template's own default, except that thinking is
    switched off under a grammar or JSON schema when the template can do so."""
    reasoning_effort: str | None = None
    """"low" / "medium" / "high" for templates that take a reasoning effort (gpt-oss)."""
    tools: list[ToolSpec] = field(default_factory=list)
    """Tools the model may call in this reply (empty: none offered)."""
    tool_choice: str = "auto"
    """As in the OpenAI API: "auto", "required", "none", or one tool's name."""
    constrain_tools: bool = False
    """Constrain the reply with a grammar to "a plain answer, or valid calls to the offered
    tools" in the model family's own call syntax (in-process llama.cpp only)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> GenerationParams:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data.update({k: v for k, v in changes.items() if v is not None})
        return GenerationParams(**data)


@dataclass
class GenerationStats:
    """What one reply cost. ``cached_tokens`` are prompt tokens reused from the KV cache (not
    evaluated again); ``dropped_messages`` counts history turns the context budget left out."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    ttft_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    total_s: float = 0.0
    n_ctx: int = 0
    dropped_messages: int = 0
    truncated_input: bool = False
    reasoning_tokens: int = 0
    """Tokens the model spent thinking (included in completion_tokens)."""
    reasoning_s: float = 0.0
    """Seconds from the first thinking token to the start of the answer ("thought for 12 s")."""

    @property
    def evaluated_prompt_tokens(self) -> int:
        return max(0, self.prompt_tokens - self.cached_tokens)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GenerationStats:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class TokenEvent:
    """A piece of reply text, as soon as the model produced it."""

    text: str


@dataclass(frozen=True)
class ReasoningEvent:
    """A piece of the model's thinking (shown apart from the answer, never part of it)."""

    text: str


@dataclass(frozen=True)
class DoneEvent:
    """The last event of every stream."""

    stats: GenerationStats
    finish_reason: FinishReason
    error: str | None = None


@dataclass(frozen=True)
class ToolCallEvent:
    """A complete call to a tool, parsed from the reply as it streamed (the call's own text is
    not part of the answer)."""

    call: ToolCall


StreamEvent = TokenEvent | ReasoningEvent | ToolCallEvent | DoneEvent


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: ``name`` is ``SERVER.TOOL`` (built-ins ``documents.search``,
    ``clock.now``, ``math.calculate``); ``parameters`` the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    server: str = ""
    read_only: bool = False
    """Reads but changes nothing (a built-in of this kind may be allowed by default)."""

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry (also what chat templates take as ``tools``)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for. ``arguments`` is the parsed JSON object; a call whose
    arguments did not parse keeps them in ``raw_arguments`` and says why in ``error``."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI shape, arguments as an object (what chat templates read)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


ToolStatus = Literal["ok", "error", "denied", "interrupted"]


@dataclass(frozen=True)
class ToolResult:
    """What running a call gave: ``content`` is plain text handed back to the model (data,
    never control); ``sources`` carry citations (``documents.search``)."""

    call_id: str
    name: str
    content: str
    status: ToolStatus = "ok"
    duration_s: float = 0.0
    sources: tuple[Source, ...] = ()


@dataclass
class ModelIdentity:
    """Which model produced a reply; stored with every assistant message."""

    name: str
    backend: str = "llama_cpp"
    path: str | None = None
    quant: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    architecture: str | None = None
    n_ctx_train: int | None = None
    parameters: int | None = None
    chat_template: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelIdentity | None:
        if not data:
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Source:
    """One retrieved chunk given to a grounded turn: where it is, how it ranked, its text.
    ``n`` is its number in the prompt (what a reply cites), set once the budget chose it;
    ``trimmed`` the share of its tokens kept when it was cut to fit (None: whole)."""

    text: str
    path: str
    display_path: str = ""
    """The path shown to the user: relative to the indexed folder when it lies inside one."""
    start_line: int | None = None
    end_line: int | None = None
    page: int | None = None
    heading: str = ""
    rank: int = 0
    score: float = 0.0
    """The fused rank score (1.0: ranked first by every ranker)."""
    similarity: float = 0.0
    """Cosine of the question and the chunk in the chunk's embedding space."""
    threshold: float | None = None
    """The similarity this chunk needed (None: no bar applied)."""
    language: str = ""
    """The question's language as retrieval decided it."""
    space: str = ""
    """The embedder whose vectors the similarity compares."""
    collection: str = ""
    embedder: str = ""
    """The collection's embedder setting (citations are checked again with it)."""
    n: int | None = None
    trimmed: float | None = None

    @property
    def shown_path(self) -> str:
        return self.display_path or self.path

    @property
    def location(self) -> str:
        """``file:12-30`` / ``file p.3:4-9``: where the chunk is, as chatapp shows it."""
        where = self.shown_path or "source"
        if self.page is not None:
            where += f" p.{self.page}"
        if self.start_line is not None:
            where += f":{self.start_line}-{self.end_line or self.start_line}"
        return where

    def to_dict(self) -> dict[str, Any]:
        """The stored and ``--json`` shape (``n`` and ``trimmed`` only when set)."""
        data = asdict(self)
        for key in ("n", "trimmed"):
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        """A source as stored: unknown keys ignored; a missing value, or one of the wrong
        type (a damaged or hand-edited row), at its default."""
        known: dict[str, Any] = {}
        for name, value in data.items():
            kind = _SOURCE_FIELD_TYPES.get(name)
            if kind is None or isinstance(value, bool):
                continue
            if kind is float and isinstance(value, int | float):
                known[name] = float(value)
            elif isinstance(value, kind):
                known[name] = value
        known.setdefault("text", "")
        known.setdefault("path", known.get("display_path", ""))
        return cls(**known)


_SOURCE_FIELD_TYPES: dict[str, type] = {
    **dict.fromkeys(
        ("text", "path", "display_path", "heading", "language", "space", "collection", "embedder"),
        str,
    ),
    **dict.fromkeys(("start_line", "end_line", "page", "rank", "n"), int),
    **dict.fromkeys(("score", "similarity", "threshold", "trimmed"), float),
}
"""What each stored source field holds (a value of another type reads as the default)."""


def sources_from_dicts(items: Any) -> list[Source] | None:
    """Stored sources as Source values (entries that are not objects are skipped)."""
    if items is None:
        return None
    if not isinstance(items, list):
        return []
    return [Source.from_dict(item) for item in items if isinstance(item, dict)]


@dataclass(frozen=True)
class Evidence:
    """What retrieval's rankers found for a question, from which it decides whether the
    documents answer it (chatapp.retrieval.search.evidence)."""

    dense: float
    """The best cosine between the question and a chunk in the space that reads its language."""
    coverage: float
    """The share of the question's content terms one chunk holds, weighted by rarity."""
    missing: tuple[str, ...] = ()
    """Names (Latin-script words) of a non-English question that no chunk holds."""
    terms: int = 0
    """How many distinct content terms the question has."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "dense": round(self.dense, 4),
            "coverage": round(self.coverage, 4),
            "missing": list(self.missing),
            "terms": self.terms,
        }


@dataclass
class Retrieval:
    """The outcome of one search for a turn. No sources means the documents don't answer it."""

    collection: str
    query: str
    sources: list[Source] = field(default_factory=list)
    """Relevant chunks, best first."""
    threshold: float = 0.0
    """The similarity a chunk needed to count as a source."""
    embedder: str = ""
    top_k: int = 0
    language: str = ""
    """The question's language as retrieval decided it (``ko``, ``en``, …)."""
    source_tokens: int = 0
    """The budget the sources were cut to (0: whole chunks)."""
    decided_by: str = ""
    """Which evidence decided whether the documents answer (``dense``, ``keywords``,
    ``dense+keywords``, ``missing_term``, ``weak``, ``min_score``; retrieval's Decision)."""
    evidence: Evidence | None = None
    """The evidence that decision read."""

    def settings_summary(self) -> dict[str, Any]:
        """What is stored with the reply: how the sources were chosen."""
        return {
            "collection": self.collection,
            "embedder": self.embedder,
            "top_k": self.top_k,
            "threshold": self.threshold,
            "language": self.language,
            "found": len(self.sources),
            "source_tokens": self.source_tokens,
            "best_similarity": max((s.similarity for s in self.sources), default=None),
            "decided_by": self.decided_by,
            "evidence": self.evidence.to_dict() if self.evidence else None,
        }


class CancelToken:
    """Set from any thread to stop a generation between two tokens."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

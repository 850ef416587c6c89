"""The rows of the conversation store as plain dataclasses (no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chatapp.domain import Source, ToolCall


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def from_json_text(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def sources_json(sources: list[Source] | None) -> str | None:
    """Sources as stored: a JSON list of objects (the storage edge; everywhere else they are
    ``Source`` values)."""
    return None if sources is None else json_text([s.to_dict() for s in sources])


@dataclass
class Conversation:
    id: int
    title: str
    created_at: str
    updated_at: str
    system_prompt: str | None = None
    model: str | None = None
    template: str | None = None
    collection: str | None = None
    active_leaf_id: int | None = None
    message_count: int = 0


@dataclass
class Message:
    id: int
    conversation_id: int
    parent_id: int | None
    role: str
    content: str
    created_at: str
    status: str = "complete"
    model: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    seed: int | None = None
    template: str | None = None
    sources: list[Source] | None = None
    stats: dict[str, Any] | None = None
    error: str | None = None
    reasoning: str | None = None
    """A thinking model's reasoning before the answer (None when it did not think)."""
    turn: dict[str, Any] | None = None
    """What produced it: the turn request (template + variables, collection, overrides) and,
    on replies, the retrieval settings, the context plan's summary and the citation check;
    on a ``tool`` row, the call it answers (``tool_call_id``, ``name``, ``arguments``,
    ``verdict``, ``duration_s``)."""
    tool_calls: list[ToolCall] | None = None
    """An assistant step's calls to tools (the rows after it hold their results)."""

    @property
    def kind(self) -> str:
        """``reply``, or ``refusal`` for "the documents don't contain this" answers."""
        return str((self.turn or {}).get("kind", "reply"))

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if self.sources is not None:
            data["sources"] = [s.to_dict() for s in self.sources]
        if self.tool_calls is not None:
            data["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        return data


@dataclass
class SearchHit:
    conversation_id: int
    message_id: int
    title: str
    role: str
    snippet: str
    updated_at: str = ""
    rank: float = field(default=0.0)


def tool_calls_json(calls: list[ToolCall] | None) -> str | None:
    """Calls as stored: the OpenAI shape plus what did not parse (the storage edge)."""
    if calls is None:
        return None
    return json_text(
        [{**c.to_dict(), "raw_arguments": c.raw_arguments, "error": c.error} for c in calls]
    )


def tool_calls_from_json(text: str | None) -> list[ToolCall] | None:
    """Stored calls as ``ToolCall`` values (entries that are not objects are skipped)."""
    items = from_json_text(text)
    if not isinstance(items, list):
        return None
    calls = []
    for item in items:
        if not isinstance(item, dict):
            continue
        function = item.get("function")
        if not isinstance(function, dict):
            function = {}
        arguments = function.get("arguments")
        calls.append(
            ToolCall(
                id=str(item.get("id", "")),
                name=str(function.get("name", "")),
                arguments=arguments if isinstance(arguments, dict) else {},
                raw_arguments=str(item.get("raw_arguments") or ""),
                error=item.get("error") if isinstance(item.get("error"), str) else None,
            )
        )
    return calls

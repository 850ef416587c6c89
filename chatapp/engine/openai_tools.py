"""Tools on an OpenAI-compatible server: the ``tools`` / ``tool_choice`` request fields, the
history's calls and results in the wire shape, and the streamed ``tool_calls`` deltas put back
together by index (id, name, argument string pieces; several calls in one reply).

OpenAI function names allow only ``[a-zA-Z0-9_-]{1,64}``; chatapp's ``SERVER.TOOL`` names are
sent with the dot as ``__`` (``clock.now`` → ``clock__now``) and mapped back. Nothing the server
sends is trusted: every delta is checked field by field, and a reply may hold at most
``MAX_CALLS`` calls of at most ``MAX_ARGUMENT_CHARS`` argument text each (else the stream is
refused with a ``StreamProblem``, like any other malformed chunk).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chatapp.domain import ChatMessage, GenerationParams, ToolCall, ToolSpec
from chatapp.engine.control_tokens import defuse, map_strings
from chatapp.engine.openai_stream import StreamProblem
from chatapp.engine.tool_call_syntax import new_call_id
from chatapp.engine.tool_prompt import offered

MAX_CALLS = 32
MAX_ARGUMENT_CHARS = 256 * 1024
MAX_ID_CHARS = 256
_INVALID_RE = re.compile(r"[^a-zA-Z0-9_-]")


def wire_name(name: str) -> str:
    """A tool's name as an OpenAI function name (``clock.now`` → ``clock__now``)."""
    return _INVALID_RE.sub("_", name.replace(".", "__"))[:64] or "_"


def tool_fields(params: GenerationParams) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` for the request body (nothing when no tools are offered)."""
    specs = offered(params.tools, params.tool_choice)
    if not specs:
        return {}
    tools = []
    for spec in specs:
        entry = map_strings(spec.to_openai(), defuse)  # descriptions come from servers
        entry["function"]["name"] = wire_name(spec.name)
        tools.append(entry)
    choice: Any = params.tool_choice
    if choice not in ("auto", "required"):
        choice = {"type": "function", "function": {"name": wire_name(choice)}}
    return {"tools": tools, "tool_choice": choice}


def wire_message(message: ChatMessage) -> dict[str, Any]:
    """A message in the wire shape: a call's arguments as a JSON string, names mapped."""
    item = message.to_dict()
    if message.tool_calls:
        item["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": wire_name(call.name),
                    "arguments": json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in message.tool_calls
        ]
    if message.role == "tool" and message.name is not None:
        item["name"] = wire_name(message.name)
    return item


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


def _field(value: Any, what: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StreamProblem(f"sent a malformed chunk ({what} is not text)")
    if len(value) > limit:
        raise StreamProblem(f"sent a malformed chunk ({what} is over {limit} characters)")
    return value


def tool_deltas(payload: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """``choices[0].delta.tool_calls`` of a chunk ``parse_chunk`` has checked, checked: a list
    of objects with an integer ``index`` and, where present, text ``id`` / ``function.name`` /
    ``function.arguments``."""
    choices = payload.get("choices") or [{}]
    raw = (choices[0].get("delta") or {}).get("tool_calls")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise StreamProblem("sent a malformed chunk (delta.tool_calls is not a list)")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise StreamProblem("sent a malformed chunk (a tool_calls delta is not an object)")
        index = item.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MAX_CALLS:
            raise StreamProblem(
                f"sent a malformed chunk (tool_calls index is not a number below {MAX_CALLS})"
            )
        function = item.get("function") or {}
        if not isinstance(function, dict):
            raise StreamProblem("sent a malformed chunk (tool_calls function is not an object)")
        out.append(
            {
                "index": index,
                "id": _field(item.get("id"), "tool_calls id", MAX_ID_CHARS),
                "name": _field(function.get("name"), "tool_calls function.name", MAX_ID_CHARS),
                "arguments": _field(
                    function.get("arguments"), "tool_calls function.arguments", MAX_ARGUMENT_CHARS
                ),
            }
        )
    return tuple(out)


class ToolCallAssembler:
    """Streamed deltas → complete calls, by index; names mapped back to ``SERVER.TOOL``."""

    def __init__(self, specs: Sequence[ToolSpec]) -> None:
        self.names = {wire_name(spec.name): spec.name for spec in specs}
        self.partial: dict[int, _Partial] = {}

    def __bool__(self) -> bool:
        return bool(self.partial)

    def feed(self, deltas: Sequence[dict[str, Any]]) -> None:
        for delta in deltas:
            call = self.partial.setdefault(delta["index"], _Partial())
            call.id = call.id or delta["id"]
            if delta["name"]:
                call.name = (call.name + delta["name"])[:MAX_ID_CHARS]
            piece = delta["arguments"]
            call.size += len(piece)
            if call.size > MAX_ARGUMENT_CHARS:
                raise StreamProblem(
                    f"sent a tool call whose arguments are over {MAX_ARGUMENT_CHARS} characters"
                )
            call.arguments.append(piece)

    def calls(self) -> list[ToolCall]:
        """The calls in index order; arguments that do not parse make a call with an error."""
        out = []
        for _, partial in sorted(self.partial.items()):
            name = self.names.get(partial.name, partial.name.replace("__", "."))
            call_id = partial.id or new_call_id()
            raw = "".join(partial.arguments)
            if not name:
                out.append(ToolCall(call_id, "", {}, raw, "the call names no tool"))
                continue
            try:
                arguments = json.loads(raw) if raw.strip() else {}
            except (ValueError, RecursionError) as exc:
                error = f"arguments are not valid JSON ({str(exc).splitlines()[0][:200]})"
                out.append(ToolCall(call_id, name, {}, raw, error))
                continue
            if not isinstance(arguments, dict):
                out.append(ToolCall(call_id, name, {}, raw, "arguments are not a JSON object"))
                continue
            out.append(ToolCall(call_id, name, arguments, raw))
        return out

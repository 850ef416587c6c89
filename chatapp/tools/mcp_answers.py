"""What an MCP server gave, as text for the model and one line for the user.

``result_output`` joins a tool result's text blocks and summarises the rest (``[image
image/png, 1,024 bytes]``), capped; ``describe_failure`` turns what the SDK or its transport
raised into a short phrase for ``McpServerError``."""

from __future__ import annotations

import json
from typing import Any

from chatapp.tools.registry import ToolOutput

CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
"""JSON-RPC error codes the SDK gives for a lost connection and a request past its timeout."""


def result_output(result: Any, limit: int) -> ToolOutput:
    """A ``CallToolResult`` as text: text blocks joined, other blocks summarised; blocks past
    ``limit`` characters are left out (the registry cuts the text, with its note)."""
    parts: list[str] = []
    size = 0
    for block in getattr(result, "content", None) or []:
        piece = block_text(block)
        parts.append(piece)
        size += len(piece)
        if size > limit:
            break
    text = "\n".join(parts)
    if not parts and getattr(result, "structured_content", None) is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False, default=str)
    return ToolOutput(text, is_error=bool(getattr(result, "is_error", False)))


def block_text(block: Any) -> str:
    kind = getattr(block, "type", "")
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        size = len(getattr(block, "data", "") or "") * 3 // 4
        return f"[{kind} {getattr(block, 'mime_type', '')}, {size:,} bytes]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if isinstance(text, str):
            return f"[resource {resource.uri}]\n{text}"
        return f"[resource {resource.uri}, {getattr(resource, 'mime_type', None) or 'binary'}]"
    if kind == "resource_link":
        return f"[resource link {getattr(block, 'name', '')} {getattr(block, 'uri', '')}]"
    return f"[{kind or 'unknown'} content]"


def describe_failure(exc: BaseException) -> str:
    """One line for what the SDK or the transport raised (task groups unwrapped)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError):
        return f"no such program {exc.filename or ''}".rstrip()
    if isinstance(exc, PermissionError):
        return f"not allowed to run {exc.filename or 'it'}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    name = type(exc).__name__
    if name == "ValidationError":
        return "answered something that is not MCP"
    if name in ("ConnectError", "ConnectTimeout"):
        return "cannot connect (nothing answers at that address)"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        hint = " (check its headers: chatapp mcp add NAME --url URL --header K=V)"
        return f"HTTP {status}{hint if status in (401, 403) else ''}"
    text = " ".join(str(exc).split())[:300]
    if name in ("MCPError", "McpError"):
        code = getattr(exc, "code", None)
        if code == CONNECTION_CLOSED:
            return "the connection closed (the server exited or is not an MCP server)"
        if code == REQUEST_TIMEOUT:
            return "no answer in time"
        return text or "the server reported an error"
    return f"{name}: {text}" if text else name


def is_tool_error(exc: BaseException) -> bool:
    """An error answer from a live server (unknown tool, bad arguments, a timeout), not a
    lost connection."""
    code = getattr(exc, "code", None)
    return type(exc).__name__ in ("MCPError", "McpError") and code not in (None, CONNECTION_CLOSED)

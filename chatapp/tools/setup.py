"""The tool registry a front end offers: the built-ins and the MCP servers of ``mcp.json``.

Nothing starts here: an MCP server starts when its tools are first listed or called, and stops
with ``ToolRegistry.close`` (or when chatapp exits)."""

from __future__ import annotations

from pathlib import Path

from chatapp.config import Settings
from chatapp.tools.builtin_tools import ClockTools, DocumentTools, MathTools, SearchDocuments
from chatapp.tools.mcp_client import McpServerTools
from chatapp.tools.mcp_config import load_servers
from chatapp.tools.registry import ToolLimits, ToolProvider, ToolRegistry

CHARS_PER_TOKEN = 4
"""``tools.max_result_tokens`` is turned into characters at this rate (results are cut before
any tokenizer sees them)."""


def build_registry(
    settings: Settings,
    *,
    search: SearchDocuments | None = None,
    collection: str | None = None,
    include_mcp: bool = True,
    mcp_path: Path | None = None,
) -> ToolRegistry:
    """``clock`` and ``math``; ``documents`` when a ``search`` callable is given (over
    ``collection``, else ``retrieval.collection``); and, with ``include_mcp``, one provider per
    server of ``mcp.json`` with its header secrets from the keys file. A bad ``mcp.json``
    raises ``McpConfigError`` (a front end may then build again with ``include_mcp=False``)."""
    max_chars = settings.tools.max_result_tokens * CHARS_PER_TOKEN
    providers: list[ToolProvider] = [ClockTools(), MathTools()]
    if search is not None:
        providers.append(
            DocumentTools(
                search, collection or settings.retrieval.collection, settings.retrieval.top_k
            )
        )
    if include_mcp:
        for entry in load_servers(mcp_path, settings.mcp.headers):
            providers.append(
                McpServerTools(
                    entry,
                    start_timeout_s=settings.tools.start_timeout_s,
                    call_timeout_s=settings.tools.call_timeout_s,
                    max_result_chars=max_chars,
                )
            )
    limits = ToolLimits(call_timeout_s=settings.tools.call_timeout_s, max_result_chars=max_chars)
    return ToolRegistry(providers, limits)

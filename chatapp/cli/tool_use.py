"""Tools from the shell: what ``chatapp ask`` offers the model, and who says yes.

``--tools documents,clock,math,SERVER`` chooses the tool servers (default ``tools.offered``),
``--tool-choice auto|required|none|NAME`` as in the OpenAI API, ``--max-steps`` the model calls
of one turn. A call runs by a stored rule, ``--allow-tool NAME`` (repeatable; a server name
allows all its tools), ``--allow-all-tools``, or a read-only built-in; otherwise, on a terminal,
chatapp asks on stderr (``y`` once, ``a`` always — stored as a rule —, anything else no), and in
a pipe or a script the call is denied and the model told which flag would allow it."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from chatapp.errors import UsageError
from chatapp.terminal_text import safe_for_terminal

if TYPE_CHECKING:
    from chatapp.config import Settings
    from chatapp.domain import ToolCall, ToolSpec
    from chatapp.session.tool_loop import ToolUse
    from chatapp.tools.approval import Answer

ToolsOpt = Annotated[
    str | None,
    typer.Option(
        "--tools",
        help="Tool servers the model may call, comma-separated: documents, clock, math, or an "
        "MCP server of mcp.json ('' for none; default: tools.offered).",
    ),
]
ToolChoiceOpt = Annotated[
    str | None,
    typer.Option("--tool-choice", help="auto, required, none, or one tool's SERVER.TOOL name."),
]
AllowToolOpt = Annotated[
    list[str] | None,
    typer.Option("--allow-tool", help="Let this tool (or server) run without asking; repeatable."),
]
AllowAllToolsOpt = Annotated[
    bool, typer.Option("--allow-all-tools", help="Let every offered tool run without asking.")
]
MaxStepsOpt = Annotated[
    int | None,
    typer.Option("--max-steps", min=1, max=64, help="Model calls in one turn (tools.max_steps)."),
]


def tool_selection(tools: str | None) -> list[str] | None:
    """``--tools`` as a list (None: the settings' default; empty: none)."""
    if tools is None:
        return None
    names = [t.strip() for t in tools.split(",") if t.strip()]
    for name in names:
        if not all(c.isalnum() or c in "._-" for c in name):
            raise UsageError(f"--tools: {name!r} is not a tool server or SERVER.TOOL name")
    return names


class TerminalApprover:
    """Asks on stderr and reads the answer from the terminal."""

    def ask(self, call: ToolCall, spec: ToolSpec) -> Answer:
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        if len(arguments) > 400:
            arguments = arguments[:400] + "…"
        question = f"Allow {call.name}({arguments})? [y/N/a] "
        sys.stderr.write(safe_for_terminal(question))
        sys.stderr.flush()
        try:
            answer = sys.stdin.readline().strip().lower()
        except (OSError, ValueError):
            answer = ""
        if answer in ("a", "always"):
            return "always"
        return "once" if answer in ("y", "yes") else "deny"


def can_ask() -> bool:
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def tool_use_for_ask(
    settings: Settings,
    *,
    allow: list[str] | None,
    allow_all: bool,
    max_steps: int | None,
    search_collection: str | None,
    retrieve: object | None,
    reading_stdin: bool,
) -> ToolUse:
    """The ``ToolUse`` of one ``chatapp ask``: rules from the settings, this run's allowances,
    the terminal's yes (unless stdin carried the prompt), and ``documents.search`` over the
    collection given with -C (else ``retrieval.collection``)."""
    from chatapp.config import save_settings
    from chatapp.session.tool_loop import ToolUse

    def remember(name: str, rule: str) -> None:
        settings.tools.rules = {**settings.tools.rules, name: rule}  # type: ignore[dict-item]
        save_settings(settings)
        print(
            f"note: {name} is now always allowed (chatapp config, [tools] rules)", file=sys.stderr
        )

    tools = ToolUse.from_settings(
        settings,
        approver=TerminalApprover() if can_ask() and not reading_stdin else None,
        allowed_now=allow or [],
        allow_all=allow_all,
        search=retrieve,  # type: ignore[arg-type]
        collection=search_collection,
        remember=remember,
    )
    if max_steps is not None:
        tools.max_steps = max_steps
    return tools

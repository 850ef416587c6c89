"""One tool call in the chat, folded: "▸ documents.search · 0.2 s"; unfolded, its arguments and
its result. Shown live as the tool loop runs (from the turn's ToolCallStarted/Finished events)
and for stored ``tool`` rows when a conversation is reopened. The name, arguments and result come
from the model or a server: shown escaped, never as markup."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from textual.content import Content
from textual.widgets import Collapsible, Static

from chatapp.terminal_text import safe_for_terminal

if TYPE_CHECKING:
    from chatapp.domain import ToolCall, ToolResult
    from chatapp.storage import Message

STATUS_WORDS = {"error": "failed", "denied": "denied", "interrupted": "interrupted"}


def arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, indent=2, ensure_ascii=False, sort_keys=True)


def call_title(name: str, status: str | None, duration_s: float | None) -> Content:
    """``documents.search · 0.2 s`` (or ``· running…``, ``· denied``, ``· failed · 1.0 s``)."""
    parts: list[str | tuple[str, str]] = [(safe_for_terminal(name), "bold")]
    if status is None:
        parts.append((" · running…", "dim"))
    else:
        if status in STATUS_WORDS:
            parts.append((f" · {STATUS_WORDS[status]}", "$error" if status != "denied" else "dim"))
        if duration_s is not None and status != "denied":
            parts.append((f" · {duration_s:.1f} s", "dim"))
    return Content.assemble(*parts)


class ToolCallWidget(Collapsible):
    """A call and its result (see the module docstring)."""

    def __init__(
        self,
        name: str,
        arguments: Any,
        *,
        result: str | None = None,
        status: str | None = None,
        duration_s: float | None = None,
        verdict: str = "",
        message_id: int | None = None,
    ) -> None:
        self.call_name = name
        self.status = status
        self.duration_s = duration_s
        self.message_id = message_id
        self._arguments = Static(
            Content.assemble(("arguments\n", "dim"), safe_for_terminal(arguments_text(arguments))),
            classes="tool-arguments",
        )
        self._verdict = Static(
            Content.assemble((safe_for_terminal(verdict), "dim")), classes="tool-verdict"
        )
        self._result = Static(self._result_content(result), classes="tool-result")
        super().__init__(
            self._verdict,
            self._arguments,
            self._result,
            title=call_title(name, status, duration_s),  # type: ignore[arg-type]
            collapsed_symbol="▸",
            expanded_symbol="▾",
            classes="tool-call",
        )

    @staticmethod
    def _result_content(result: str | None) -> Content:
        if result is None:
            return Content("")
        return Content.assemble(("result\n", "dim"), safe_for_terminal(result or "(no output)"))

    @classmethod
    def from_row(cls, message: Message) -> ToolCallWidget:
        """A stored ``tool`` row (one written by an interrupted run has no result yet)."""
        turn = message.turn or {}
        status = turn.get("status")
        if message.status in ("streaming", "interrupted") and status is None:
            status = "interrupted"
        duration = turn.get("duration_s")
        return cls(
            str(turn.get("name") or "tool"),
            turn.get("arguments") or {},
            result=message.content,
            status=str(status) if status is not None else "ok",
            duration_s=float(duration) if isinstance(duration, int | float) else None,
            verdict=str(turn.get("verdict") or ""),
            message_id=message.id,
        )

    @classmethod
    def started(cls, call: ToolCall, allowed: bool, reason: str) -> ToolCallWidget:
        return cls(call.name, call.raw_arguments if call.error else call.arguments, verdict=reason)

    def finish(self, result: ToolResult) -> None:
        """The call ended: its status, time and result."""
        self.status = result.status
        self.duration_s = result.duration_s
        self.title = call_title(self.call_name, result.status, result.duration_s)  # type: ignore[assignment]
        self._result.update(self._result_content(result.content))

    @property
    def title_text(self) -> str:
        return call_title(self.call_name, self.status, self.duration_s).plain

"""The built-in tools, no server needed: ``clock.now``, ``math.calculate`` and
``documents.search``. All three only read, so they may be allowed by default
(``tools.allow_read_only``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from chatapp.domain import CancelToken, Retrieval, ToolSpec
from chatapp.tools.calculator import CalculationError, calculate
from chatapp.tools.registry import ToolOutput

SearchDocuments = Callable[[str, str, int], Retrieval]
"""(query, collection, top_k) -> the retrieval's sources, best first."""


class ClockTools:
    """``clock.now``: the local date, time, weekday and time zone (small models get dates
    wrong)."""

    server = "clock"

    def __init__(self, now: Callable[[], dt.datetime] | None = None) -> None:
        self._now = now or (lambda: dt.datetime.now().astimezone())

    def specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(
                name="clock.now",
                description="The current local date, time, weekday and time zone.",
                parameters={"type": "object", "properties": {}, "additionalProperties": False},
                server=self.server,
                read_only=True,
            )
        ]

    def call(self, tool: str, arguments: dict[str, Any], cancel: CancelToken | None) -> ToolOutput:
        now = self._now()
        zone = now.tzname() or "local time"
        offset = now.strftime("%z")
        return ToolOutput(
            f"{now:%Y-%m-%d} ({now:%A}), {now:%H:%M:%S}, time zone {zone} (UTC{offset[:3]}:{offset[3:]})"
        )

    def close(self) -> None:
        pass


class MathTools:
    """``math.calculate``: exact arithmetic through a real expression evaluator."""

    server = "math"

    def specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(
                name="math.calculate",
                description=(
                    "Evaluate an arithmetic expression exactly, e.g. '12.5 * (3 + 4) / 7' or "
                    "'2**64'. Supports + - * / // % **, sqrt, exp, log, sin, cos, tan, pi, e."
                ),
                parameters={
                    "type": "object",
                    "properties": {
                        "expression": {"type": "string", "description": "The expression."}
                    },
                    "required": ["expression"],
                    "additionalProperties": False,
                },
                server=self.server,
                read_only=True,
            )
        ]

    def call(self, tool: str, arguments: dict[str, Any], cancel: CancelToken | None) -> ToolOutput:
        expression = str(arguments.get("expression", ""))
        try:
            return ToolOutput(f"{expression} = {calculate(expression)}")
        except CalculationError as exc:
            return ToolOutput(f"error: {exc}", is_error=True)

    def close(self) -> None:
        pass


class DocumentTools:
    """``documents.search``: the model searches one of the user's collections; the chunks
    found come back numbered with their file and lines, and as the reply's sources."""

    server = "documents"

    def __init__(self, search: SearchDocuments, collection: str, top_k: int = 4) -> None:
        self._search = search
        self.collection = collection
        self.top_k = top_k

    def specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(
                name="documents.search",
                description=(
                    f"Search the user's documents (collection '{self.collection}') and return "
                    "the passages that best match, each with its file and lines."
                ),
                parameters={
                    "type": "object",
                    "properties": {"query": {"type": "string", "description": "What to look for."}},
                    "required": ["query"],
                    "additionalProperties": False,
                },
                server=self.server,
                read_only=True,
            )
        ]

    def call(self, tool: str, arguments: dict[str, Any], cancel: CancelToken | None) -> ToolOutput:
        query = str(arguments.get("query", "")).strip()
        if not query:
            return ToolOutput("error: the query is empty", is_error=True)
        retrieval = self._search(query, self.collection, self.top_k)
        if not retrieval.sources:
            return ToolOutput(f"No passage in '{self.collection}' matches {query!r}.")
        lines = []
        for source in retrieval.sources:
            lines.append(f"--- {source.location}\n{source.text.strip()}")
        return ToolOutput("\n".join(lines), sources=tuple(retrieval.sources))

    def close(self) -> None:
        pass

"""One registry of every tool chatapp can offer: built-in providers and MCP servers.

``ToolRegistry.run`` is the one place a call runs: its name is looked up, its arguments are
checked against the tool's JSON schema, it runs in a worker thread bounded by a timeout and
stoppable from the turn's cancel token, and its text is capped before it goes back to the
model. A problem never raises: it becomes an ``error`` result the model (and the user) sees."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatapp.domain import CancelToken, Source, ToolCall, ToolResult, ToolSpec

CUT_NOTE = "\n[… result cut: {kept:,} of {total:,} characters kept]"


@dataclass(frozen=True)
class ToolOutput:
    """What a provider's tool gave: text for the model, citations for the reply."""

    content: str
    sources: tuple[Source, ...] = ()
    is_error: bool = False


class ToolProvider(Protocol):
    """A server of tools (a built-in group or an MCP server)."""

    @property
    def server(self) -> str: ...

    def specs(self) -> list[ToolSpec]:
        """The tools it offers (an MCP server starts on the first call of this)."""
        ...

    def call(self, tool: str, arguments: dict[str, Any], cancel: CancelToken | None) -> ToolOutput:
        """Run ``tool`` (its name without the server part); raise ``ChatappError`` for a
        problem the user can fix (a server that cannot start, a bad answer)."""
        ...

    def close(self) -> None: ...


@dataclass
class ToolLimits:
    """Bounds on every call: seconds it may run and characters it may give back."""

    call_timeout_s: float = 60.0
    max_result_chars: int = 4096


@dataclass
class ToolRegistry:
    """Tools by server; ``specs`` offers a selection of them, ``run`` runs one call."""

    providers: list[ToolProvider] = field(default_factory=list)
    limits: ToolLimits = field(default_factory=ToolLimits)

    def servers(self) -> list[str]:
        return [p.server for p in self.providers]

    def provider(self, server: str) -> ToolProvider | None:
        return next((p for p in self.providers if p.server == server), None)

    def specs(
        self, selection: Sequence[str] | None = None, problems: list[str] | None = None
    ) -> list[ToolSpec]:
        """The offered tools: every server's, or those of the named servers / tools.
        An unknown name raises the one-line ``UsageError``; a server that cannot start or list
        its tools raises too, or, given a ``problems`` list, is left out with its line there."""
        from chatapp.errors import ChatappError, UsageError

        wanted = None if selection is None else [s.strip() for s in selection if s.strip()]
        known = set(self.servers())
        out: list[ToolSpec] = []
        for name in wanted or []:
            server = name.split(".", 1)[0]
            if server not in known:
                raise UsageError(
                    f"tools: no tool server {name!r} (known: {', '.join(sorted(known)) or 'none'})"
                )
        for provider in self.providers:
            if wanted is not None and not any(
                w == provider.server or w.startswith(provider.server + ".") for w in wanted
            ):
                continue
            try:
                offered = provider.specs()
            except ChatappError as exc:
                if problems is None:
                    raise
                problems.append(f"{exc.message} (its tools are not offered)")
                continue
            for spec in offered:
                if wanted is None or provider.server in wanted or spec.name in wanted:
                    out.append(spec)
        return out

    def spec(self, name: str) -> ToolSpec | None:
        server = name.split(".", 1)[0]
        provider = self.provider(server)
        if provider is None:
            return None
        return next((s for s in provider.specs() if s.name == name), None)

    def run(self, call: ToolCall, cancel: CancelToken | None = None) -> ToolResult:
        """Run one call to the end, a timeout or a cancel; never raises."""
        started = time.monotonic()

        def result(
            content: str, status: str = "error", sources: tuple[Source, ...] = ()
        ) -> ToolResult:
            return ToolResult(
                call_id=call.id,
                name=call.name,
                content=content,
                status=status,  # type: ignore[arg-type]
                duration_s=time.monotonic() - started,
                sources=sources,
            )

        if call.error:
            return result(f"error: the call to {call.name} was malformed: {call.error}")
        from chatapp.errors import ChatappError

        try:
            spec = self.spec(call.name)  # an MCP server starts here on its first use
        except ChatappError as exc:
            return result(f"error: {exc.message}")
        provider = self.provider(call.name.split(".", 1)[0])
        if spec is None or provider is None:
            return result(f"error: there is no tool named {call.name!r}")
        problem = argument_problem(spec, call.arguments)
        if problem:
            return result(f"error: bad arguments for {call.name}: {problem}")
        outcome = self._run_bounded(provider, call, cancel)
        if isinstance(outcome, str):
            return result(outcome, "interrupted" if cancel and cancel.cancelled else "error")
        content = cap_text(outcome.content, self.limits.max_result_chars)
        return result(content, "error" if outcome.is_error else "ok", outcome.sources)

    def _run_bounded(
        self, provider: ToolProvider, call: ToolCall, cancel: CancelToken | None
    ) -> ToolOutput | str:
        from chatapp.errors import ChatappError

        box: dict[str, Any] = {}
        tool = call.name.split(".", 1)[1]

        def work() -> None:
            try:
                box["out"] = provider.call(tool, dict(call.arguments), cancel)
            except ChatappError as exc:
                box["err"] = f"error: {exc.message}"
            except Exception as exc:  # a tool's own bug is the model's data, not our crash
                box["err"] = f"error: {call.name} failed: {type(exc).__name__}: {exc}"

        worker = threading.Thread(target=work, name=f"tool {call.name}", daemon=True)
        worker.start()
        deadline = time.monotonic() + self.limits.call_timeout_s
        while worker.is_alive():
            worker.join(0.05)
            if cancel is not None and cancel.cancelled:
                return f"error: {call.name} was stopped"
            if time.monotonic() > deadline:
                return f"error: {call.name} gave no answer within {self.limits.call_timeout_s:g} s"
        if "err" in box:
            return str(box["err"])
        return box["out"]  # type: ignore[no-any-return]

    def close(self) -> None:
        for provider in self.providers:
            with contextlib.suppress(Exception):  # one server's failure must not keep others up
                provider.close()


def argument_problem(spec: ToolSpec, arguments: dict[str, Any]) -> str | None:
    """Why ``arguments`` do not match the tool's schema (None: they do)."""
    import jsonschema

    try:
        jsonschema.validate(arguments, spec.parameters)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"{where + ': ' if where else ''}{exc.message}"[:300]
    except jsonschema.SchemaError as exc:
        return f"the tool's schema is invalid ({exc.message[:120]})"
    return None


def cap_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a note saying how much was kept."""
    if len(text) <= limit:
        return text
    note = CUT_NOTE.format(kept=limit, total=len(text))
    return text[:limit] + note

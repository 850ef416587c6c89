"""Tool use inside a turn: which tools a turn offers, and running the calls of one step.

The session streams a step; when the model asks for calls (``ToolCallEvent``s, finish reason
``tool_calls``), ``ToolRunner`` takes them in order: the gate decides (a rule, this run's
``--allow-tool``, a read-only built-in, or the user's yes), an allowed call runs through the
registry (bounded in time and size, stoppable by the turn's cancel token), a denied one gives
the model a "denied" result. Each call is a ``tool`` row written when it starts (status
``streaming``, so a kill leaves it ``interrupted``) and finished with its result. The session
then sends the step and its results back to the model, within the one context budget, until an
answer or ``tools.max_steps``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatapp.domain import CancelToken, ChatMessage, ModelIdentity, ToolCall, ToolResult, ToolSpec
from chatapp.errors import UsageError
from chatapp.session.turns import ToolCallFinished, ToolCallStarted, TurnRequest

if TYPE_CHECKING:
    from chatapp.config import Settings
    from chatapp.storage import ConversationStore, Message
    from chatapp.tools.approval import Approver, ToolGate
    from chatapp.tools.builtin_tools import SearchDocuments
    from chatapp.tools.registry import ToolRegistry

GRAMMAR_BELOW_PARAMETERS = 4_000_000_000
"""``tools.constrain = auto`` constrains in-process models smaller than this."""
TOOL_CHOICES = ("auto", "required", "none")


@dataclass
class ToolUse:
    """What a front end lets its turns do with tools: the registry, the gate, the limits."""

    registry: ToolRegistry
    gate: ToolGate
    offered: list[str] = field(default_factory=list)
    """Offered when a request does not say (``tools.offered``)."""
    max_steps: int = 8
    constrain: str = "auto"

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        approver: Approver | None = None,
        allowed_now: Sequence[str] = (),
        allow_all: bool = False,
        search: SearchDocuments | None = None,
        collection: str | None = None,
        remember: Callable[[str, str], None] | None = None,
    ) -> ToolUse:
        from chatapp.tools.approval import ToolGate
        from chatapp.tools.setup import build_registry

        gate = ToolGate(
            rules=dict(settings.tools.rules),
            allowed_now=list(allowed_now),
            allow_all=allow_all,
            allow_read_only=settings.tools.allow_read_only,
            approver=approver,
            remember=remember,  # type: ignore[arg-type]
        )
        return cls(
            registry=build_registry(settings, search=search, collection=collection),
            gate=gate,
            offered=list(settings.tools.offered),
            max_steps=settings.tools.max_steps,
            constrain=settings.tools.constrain,
        )

    def offer(
        self, request: TurnRequest, identity: ModelIdentity, problems: list[str] | None = None
    ) -> tuple[list[ToolSpec], str, bool]:
        """The specs a request offers, its tool choice, and whether to constrain the calls; a
        server that cannot start is left out with its line in ``problems``."""
        selection = self.offered if request.tools is None else request.tools
        choice = request.tool_choice or "auto"
        if not selection or choice == "none":
            return [], "none", False
        specs = self.registry.specs(selection, problems)
        if choice not in TOOL_CHOICES and all(s.name != choice for s in specs):
            offered = ", ".join(s.name for s in specs) or "none"
            raise UsageError(f"--tool-choice {choice}: not an offered tool (offered: {offered})")
        if self.constrain == "auto":
            size = identity.parameters or 0
            constrain = identity.backend == "llama_cpp" and 0 < size < GRAMMAR_BELOW_PARAMETERS
        else:
            constrain = self.constrain == "always"
        return specs, choice, constrain

    def close(self) -> None:
        self.registry.close()


@dataclass
class ToolRunner:
    """Runs one step's calls and stores them as ``tool`` rows after ``parent_id``."""

    tools: ToolUse
    store: ConversationStore | None
    conversation_id: int | None
    cancel: CancelToken | None = None
    results: list[ToolResult] = field(default_factory=list)
    last_id: int | None = None

    def run(
        self, calls: Sequence[ToolCall], parent_id: int | None
    ) -> Iterator[ToolCallStarted | ToolCallFinished]:
        self.last_id = parent_id
        for call in calls:
            if self.cancel is not None and self.cancel.cancelled:
                result = ToolResult(
                    call.id, call.name, "error: the turn was stopped", "interrupted"
                )
                row = self._start_row(call, "not run")
                self._end_row(row, result)
                self.results.append(result)
                yield ToolCallFinished(call, result)
                continue
            spec = self.tools.registry.spec(call.name)
            if spec is None:
                allowed, reason = True, "unknown tool (the model is told)"
            else:
                verdict = self.tools.gate.decide(call, spec)
                allowed, reason = verdict.allowed, verdict.reason
            server = call.name.split(".", 1)[0]
            yield ToolCallStarted(call, server, allowed, reason)
            row = self._start_row(call, reason)
            if allowed:
                result = self.tools.registry.run(call, self.cancel)
            else:
                result = ToolResult(
                    call.id, call.name, f"The user did not allow this call ({reason}).", "denied"
                )
            self._end_row(row, result)
            self.results.append(result)
            yield ToolCallFinished(call, result)

    def _start_row(self, call: ToolCall, verdict: str) -> Message | None:
        if self.store is None or self.conversation_id is None:
            return None
        row = self.store.add_message(
            self.conversation_id,
            "tool",
            "",
            parent_id=self.last_id,
            status="streaming",
            turn={
                "tool_call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "verdict": verdict,
            },
        )
        self.last_id = row.id
        return row

    def _end_row(self, row: Message | None, result: ToolResult) -> None:
        if row is None or self.store is None:
            return
        status = "interrupted" if result.status == "interrupted" else "complete"
        turn = dict(row.turn or {})
        turn.update(status=result.status, duration_s=round(result.duration_s, 3))
        self.store.update_message(
            row.id,
            content=result.content,
            status=status,
            turn=turn,
            sources=list(result.sources) or None,
        )


def step_messages(
    text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]
) -> list[ChatMessage]:
    """A step as the model sees it next time: its calls, then one ``tool`` message each."""
    out = [ChatMessage("assistant", text, tool_calls=tuple(calls))]
    out += [
        ChatMessage("tool", r.content or "(no output)", tool_call_id=r.call_id, name=r.name)
        for r in results
    ]
    return out


def history_with_tools(chain: Sequence[Message]) -> list[ChatMessage]:
    """Stored rows as history: users, answers, steps with their calls and the calls' results.
    A call without a stored result (a process killed between the two) is left out, and so
    is a result whose call is not in the step before it."""
    out: list[ChatMessage] = []
    for m in chain:
        if m.role == "tool":
            turn = m.turn or {}
            call_id = str(turn.get("tool_call_id", ""))
            step = next((x for x in reversed(out) if x.role != "tool"), None)
            if step is None or all(c.id != call_id for c in step.tool_calls):
                continue
            content = m.content or f"error: the call to {turn.get('name')} was interrupted"
            out.append(ChatMessage("tool", content, tool_call_id=call_id, name=turn.get("name")))
        elif m.role == "assistant" and m.tool_calls:
            out.append(ChatMessage("assistant", m.content, tool_calls=tuple(m.tool_calls)))
        elif m.role in ("user", "assistant") and m.content and m.status != "error":
            out.append(ChatMessage(m.role, m.content))  # type: ignore[arg-type]
    return _answered_calls_only(out)


def _answered_calls_only(messages: list[ChatMessage]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for i, m in enumerate(messages):
        if m.role == "assistant" and m.tool_calls:
            answered = set()
            for later in messages[i + 1 :]:
                if later.role != "tool":
                    break
                answered.add(later.tool_call_id)
            calls = tuple(c for c in m.tool_calls if c.id in answered)
            if not calls and not m.content:
                continue
            m = ChatMessage("assistant", m.content, tool_calls=calls)
        out.append(m)
    return out

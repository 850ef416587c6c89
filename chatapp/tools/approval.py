"""Nothing runs without a rule or the user's yes.

``ToolGate.decide`` answers for one call: a stored rule for the tool (``allow`` / ``deny``),
a tool allowed for this run (``--allow-tool``, ``--allow-all-tools``), a read-only built-in
while ``tools.allow_read_only`` is on, or else the front end's ``Approver`` asks the user
(the chat's card, the CLI's ``y/N/a`` prompt on a terminal). With no one to ask, the call is
denied and the model is told so. "Always allow" becomes a stored rule through ``remember``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from chatapp.domain import ToolCall, ToolSpec

Answer = Literal["once", "always", "deny"]
Rule = Literal["allow", "deny"]


class Approver(Protocol):
    """Asks the user about one call (blocking until they answer, or the turn is stopped)."""

    def ask(self, call: ToolCall, spec: ToolSpec) -> Answer: ...


@dataclass(frozen=True)
class Verdict:
    """Whether a call may run, and what decided it (shown and stored with the call)."""

    allowed: bool
    reason: str


@dataclass
class ToolGate:
    """The rules and the approver of one front end."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    allowed_now: Collection[str] = ()
    """Tools (or whole servers) allowed for this run only (``--allow-tool``)."""
    allow_all: bool = False
    allow_read_only: bool = True
    approver: Approver | None = None
    remember: Callable[[str, Rule], None] | None = None
    """Stores an "always allow" answer as a rule (the settings file)."""

    def decide(self, call: ToolCall, spec: ToolSpec) -> Verdict:
        rule = self.rules.get(call.name)
        if rule == "deny":
            return Verdict(False, "denied by your rule for this tool")
        if rule == "allow":
            return Verdict(True, "allowed by your rule")
        server = call.name.split(".", 1)[0]
        if self.allow_all or call.name in self.allowed_now or server in self.allowed_now:
            return Verdict(True, "allowed for this run")
        if self.allow_read_only and spec.read_only and spec.server in BUILTIN_SERVERS:
            return Verdict(True, "a read-only built-in (tools.allow_read_only)")
        if self.approver is None:
            return Verdict(
                False,
                f"not allowed: no rule for {call.name} and no one to ask "
                f"(use --allow-tool {call.name})",
            )
        answer = self.approver.ask(call, spec)
        if answer == "always":
            if self.remember is not None:
                self.remember(call.name, "allow")
            return Verdict(True, "allowed always by you")
        if answer == "once":
            return Verdict(True, "allowed once by you")
        return Verdict(False, "denied by you")


BUILTIN_SERVERS = frozenset({"clock", "math", "documents"})

"""The tool registry, the built-ins and the approval gate, with real providers."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from chatapp.domain import CancelToken, Retrieval, Source, ToolCall, ToolSpec
from chatapp.errors import UsageError
from chatapp.tools.approval import ToolGate
from chatapp.tools.builtin_tools import ClockTools, DocumentTools, MathTools
from chatapp.tools.calculator import CalculationError, calculate
from chatapp.tools.registry import ToolLimits, ToolOutput, ToolRegistry


def registry(**limits: float) -> ToolRegistry:
    fixed = dt.datetime(2026, 12, 7, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=9), "KST"))
    return ToolRegistry(
        [ClockTools(now=lambda: fixed), MathTools()],
        ToolLimits(**limits),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1/3 + 1/6", "1/2 (≈ 0.5)"),
        ("0.1 + 0.2", "3/10 (≈ 0.3)"),
        ("2**64", "18446744073709551616"),
        ("12.5 * (3 + 4) / 7", "25/2 (≈ 12.5)"),
        ("2^10", "1024"),
        ("-(3 - 5) % 3", "2"),
    ],
)
def test_calculator_is_exact(expression: str, value: str) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("9**9**9", "exponents above"),
        ("10**5000", "digits"),
        ("__import__('os').system('id')", "is not arithmetic"),
        ("(1).__class__", "is not arithmetic"),
        ("x + 1", "is not arithmetic"),
        ("1/0", "division by zero"),
        ("", "empty"),
        ("1+" * 400 + "1", "longer than"),
        ("sqrt(-1)", "sqrt"),
    ],
)
def test_calculator_refuses_what_is_not_bounded_arithmetic(expression: str, problem: str) -> None:
    with pytest.raises(CalculationError, match=problem):
        calculate(expression)


def test_registry_runs_builtins_and_names_their_results() -> None:
    tools = registry()
    assert [s.name for s in tools.specs()] == ["clock.now", "math.calculate"]
    assert [s.name for s in tools.specs(["math"])] == ["math.calculate"]
    now = tools.run(ToolCall("c1", "clock.now", {}))
    assert now.status == "ok" and "2026-12-07 (Monday), 18:30:00" in now.content
    assert "KST (UTC+09:00)" in now.content
    sum_ = tools.run(ToolCall("c2", "math.calculate", {"expression": "2**10"}))
    assert (sum_.status, sum_.content, sum_.call_id) == ("ok", "2**10 = 1024", "c2")


def test_unknown_server_in_a_selection_is_one_line() -> None:
    with pytest.raises(UsageError, match="no tool server 'weather'"):
        registry().specs(["math", "weather"])


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (ToolCall("c", "math.calculate", {}), "'expression' is a required property"),
        (ToolCall("c", "math.calculate", {"expression": 3}), "expression: 3 is not of type"),
        (ToolCall("c", "clock.now", {"tz": "x"}), "Additional properties"),
        (ToolCall("c", "shell.run", {"cmd": "rm -rf ~"}), "no tool named 'shell.run'"),
        (ToolCall("c", "math.calculate", raw_arguments="{oops", error="not JSON"), "malformed"),
    ],
)
def test_bad_calls_become_error_results_not_exceptions(call: ToolCall, problem: str) -> None:
    result = registry().run(call)
    assert result.status == "error" and problem in result.content


class SlowTools:
    server = "slow"

    def __init__(self) -> None:
        self.release = threading.Event()

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec("slow.wait", "waits", server="slow"), ToolSpec("slow.big", "big")]

    def call(self, tool: str, arguments: dict, cancel: CancelToken | None) -> ToolOutput:
        if tool == "big":
            return ToolOutput("x" * 5_000_000)
        self.release.wait(30)
        return ToolOutput("late")

    def close(self) -> None:
        self.release.set()


def test_a_hanging_tool_times_out_and_a_huge_result_is_cut() -> None:
    slow = SlowTools()
    tools = ToolRegistry([slow], ToolLimits(call_timeout_s=0.3, max_result_chars=1000))
    started = time.monotonic()
    result = tools.run(ToolCall("c", "slow.wait", {}))
    assert result.status == "error" and "no answer within 0.3 s" in result.content
    assert time.monotonic() - started < 10
    big = tools.run(ToolCall("c", "slow.big", {}))
    assert len(big.content) < 1100 and "1,000 of 5,000,000 characters kept" in big.content
    tools.close()


def test_cancel_stops_a_running_tool() -> None:
    slow = SlowTools()
    tools = ToolRegistry([slow], ToolLimits(call_timeout_s=30))
    cancel = CancelToken()
    threading.Timer(0.2, cancel.cancel).start()
    result = tools.run(ToolCall("c", "slow.wait", {}), cancel)
    assert result.status == "interrupted"
    tools.close()


def test_documents_search_gives_numbered_passages_with_locations_and_sources() -> None:
    source = Source(
        text="Review on Friday.", path="/n/a.md", display_path="a.md", start_line=3, end_line=4
    )
    asked: list[tuple[str, str, int]] = []

    def search(query: str, collection: str, top_k: int) -> Retrieval:
        asked.append((query, collection, top_k))
        return Retrieval(
            collection=collection, query=query, sources=[source] if "review" in query else []
        )

    tools = ToolRegistry([DocumentTools(search, "notes", top_k=3)])
    found = tools.run(ToolCall("c", "documents.search", {"query": "when is the review"}))
    assert "--- a.md:3-4\nReview on Friday." in found.content and found.sources == (source,)
    assert asked == [("when is the review", "notes", 3)]
    none = tools.run(ToolCall("c", "documents.search", {"query": "lunch"}))
    assert "No passage in 'notes'" in none.content and none.sources == ()


class Asker:
    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def ask(self, call: ToolCall, spec: ToolSpec) -> str:
        self.asked.append(call.name)
        return self.answer


MCP_SPEC = ToolSpec("files.write", "writes", server="files")
CLOCK_SPEC = ClockTools().specs()[0]


def test_nothing_runs_without_a_rule_or_a_yes() -> None:
    call = ToolCall("c", "files.write", {"path": "x"})
    assert not ToolGate().decide(call, MCP_SPEC).allowed
    assert "--allow-tool files.write" in ToolGate().decide(call, MCP_SPEC).reason
    no = Asker("deny")
    assert not ToolGate(approver=no).decide(call, MCP_SPEC).allowed and no.asked == ["files.write"]
    assert ToolGate(approver=Asker("once")).decide(call, MCP_SPEC).allowed
    assert ToolGate(allowed_now=["files"]).decide(call, MCP_SPEC).allowed
    assert ToolGate(allow_all=True).decide(call, MCP_SPEC).allowed


def test_always_allow_becomes_a_rule_and_deny_rules_win() -> None:
    stored: dict[str, str] = {}
    gate = ToolGate(
        approver=Asker("always"), remember=lambda name, rule: stored.update({name: rule})
    )
    assert gate.decide(ToolCall("c", "files.write"), MCP_SPEC).allowed
    assert stored == {"files.write": "allow"}
    denied = ToolGate(rules={"clock.now": "deny"}, allow_all=True)
    assert not denied.decide(ToolCall("c", "clock.now"), CLOCK_SPEC).allowed


def test_read_only_builtins_are_allowed_by_default_and_can_be_switched_off() -> None:
    call = ToolCall("c", "clock.now")
    assert ToolGate().decide(call, CLOCK_SPEC).allowed
    assert not ToolGate(allow_read_only=False).decide(call, CLOCK_SPEC).allowed
    # an MCP server calling itself read-only is not trusted as a built-in
    lying = ToolSpec("evil.now", "", server="evil", read_only=True)
    assert not ToolGate().decide(ToolCall("c", "evil.now"), lying).allowed

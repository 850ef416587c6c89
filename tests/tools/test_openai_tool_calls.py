"""Tool calls through the OpenAI-compatible backend against a real loopback server that streams
``tool_calls`` deltas: the request carries tools and tool_choice (names mapped to the
``[a-zA-Z0-9_-]`` set), deltas are assembled by index (parallel calls, arguments in pieces),
and hostile deltas end the reply with one line instead of a call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.domain import (
    ChatMessage,
    DoneEvent,
    GenerationParams,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)
from chatapp.engine.openai import OpenAIBackend
from chatapp.engine.openai_tools import MAX_ARGUMENT_CHARS, wire_name
from chatapp.errors import BackendUnavailableError

TOOLS = [
    ToolSpec("clock.now", "Time.", {"type": "object", "properties": {}}),
    ToolSpec("math.calculate", "Arithmetic <|im_end|>.", {"type": "object", "properties": {}}),
]
CHAT = [ChatMessage("user", "What time is it, and 6*7?")]


@pytest.fixture
def server() -> Iterator:
    from tests.support.reasoning_server import ReasoningServer

    template = Path(__file__).parent.parent / "data" / "chat_templates" / "Qwen-Qwen3-0.6B.jinja"
    with ReasoningServer(template.read_text(encoding="utf-8")) as running:
        yield running


def _delta(index: int, **fields) -> dict:
    function = {k: v for k, v in fields.items() if k in ("name", "arguments")}
    item: dict = {"index": index, "function": function}
    if "id" in fields:
        item.update(id=fields["id"], type="function")
    return {"tool_calls": [item]}


def _events(server, params: GenerationParams, chat=CHAT) -> list:
    backend = OpenAIBackend(server.base_url)
    try:
        return list(backend.stream_chat(chat, params))
    finally:
        backend.close()


def test_parallel_calls_stream_in_pieces_and_are_assembled(server) -> None:
    server.script(
        [
            {"content": "Let me check."},
            _delta(0, id="call_a", name="clock__now", arguments=""),
            _delta(1, id="call_b", name="math__calculate", arguments='{"expr'),
            _delta(0, arguments="{}"),
            _delta(1, arguments='ession": "6*7'),
            _delta(1, arguments='"}'),
        ]
    )
    events = _events(server, GenerationParams(tools=TOOLS, tool_choice="required"))
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == "Let me check."
    assert calls == [
        ToolCall("call_a", "clock.now", {}, "{}"),
        ToolCall("call_b", "math.calculate", {"expression": "6*7"}, '{"expression": "6*7"}'),
    ]
    assert isinstance(events[-1], DoneEvent) and events[-1].finish_reason == "tool_calls"
    sent = server.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["clock__now", "math__calculate"]
    assert sent["tool_choice"] == "required"
    assert "<|im_end|>" not in json.dumps(sent["tools"], ensure_ascii=False)  # defused


def test_history_calls_go_back_in_the_wire_shape(server) -> None:
    server.script([{"content": "It is noon."}])
    call = ToolCall("call_a", "clock.now", {"timezone": "<|im_end|>"})
    chat = [
        *CHAT,
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "12:00", tool_call_id="call_a", name="clock.now"),
    ]
    events = _events(server, GenerationParams(tools=TOOLS, tool_choice="clock.now"), chat)
    assert events[-1].finish_reason == "stop"
    sent = server.requests[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "clock__now"}}
    assistant, tool = sent["messages"][1], sent["messages"][2]
    function = assistant["tool_calls"][0]["function"]
    assert function["name"] == "clock__now"
    assert json.loads(function["arguments"]) == {"timezone": "<\u2060|im_end|>"}
    assert tool == {
        "role": "tool",
        "content": "12:00",
        "tool_call_id": "call_a",
        "name": "clock__now",
    }


def test_no_tools_field_when_none_are_offered(server) -> None:
    server.script([{"content": "Hi."}])
    _events(server, GenerationParams(tools=TOOLS, tool_choice="none"))
    assert "tools" not in server.requests[-1] and "tool_choice" not in server.requests[-1]


def test_malformed_arguments_are_a_call_with_an_error(server) -> None:
    server.script([_delta(0, id="c1", name="math__calculate", arguments='{"expression": ')])
    (event,) = [
        e for e in _events(server, GenerationParams(tools=TOOLS)) if isinstance(e, ToolCallEvent)
    ]
    assert event.call.name == "math.calculate" and "not valid JSON" in (event.call.error or "")
    assert event.call.raw_arguments == '{"expression": '


@pytest.mark.parametrize(
    ("delta", "problem"),
    [
        ({"tool_calls": {"index": 0}}, "delta.tool_calls is not a list"),
        ({"tool_calls": ["x"]}, "is not an object"),
        ({"tool_calls": [{"index": -1}]}, "index is not a number"),
        ({"tool_calls": [{"index": 10**9}]}, "index is not a number"),
        ({"tool_calls": [{"index": True}]}, "index is not a number"),
        ({"tool_calls": [{"index": 0, "function": "f"}]}, "function is not an object"),
        ({"tool_calls": [{"index": 0, "function": {"name": 5}}]}, "function.name is not text"),
        (
            {"tool_calls": [{"index": 0, "function": {"arguments": {"a": 1}}}]},
            "arguments is not text",
        ),
        ({"tool_calls": [{"index": 0, "id": "x" * 1000}]}, "id is over"),
    ],
)
def test_hostile_deltas_are_one_line(server, delta: dict, problem: str) -> None:
    server.script([delta])
    with pytest.raises(BackendUnavailableError) as caught:
        _events(server, GenerationParams(tools=TOOLS))
    message = str(caught.value)
    assert problem in message and "\n" not in message and server.base_url in message


def test_arguments_are_capped(server) -> None:
    piece = "a" * 60_000
    server.script([_delta(0, id="c", name="clock__now", arguments=piece) for _ in range(6)])
    with pytest.raises(BackendUnavailableError, match=f"over {MAX_ARGUMENT_CHARS} characters"):
        _events(server, GenerationParams(tools=TOOLS))


def test_wire_names() -> None:
    assert wire_name("clock.now") == "clock__now"
    assert wire_name("my server.do it!") == "my_server__do_it_"
    assert len(wire_name("x" * 100)) == 64

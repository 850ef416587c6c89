"""The streaming call parser per family: calls split across any token boundary, text before a
call, two calls, malformed JSON, and the finish reason of a reply that made calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.domain import DoneEvent, GenerationStats, TokenEvent, ToolCall, ToolCallEvent
from chatapp.engine.tool_call_syntax import (
    GEMMA4,
    GRANITE,
    HERMES,
    INJECTED,
    LFM2,
    LLAMA3,
    MISTRAL,
    PHI4,
    CallSyntax,
    ToolCallParser,
    with_tool_calls,
)

ARGS = {"expression": "2*(3+4)", "note": "한국어 </tool_call> ]"}


def _run(syntax: CallSyntax, reply: str, step: int) -> tuple[str, list[ToolCall]]:
    """Feed ``reply`` in pieces of ``step`` characters: (text, calls)."""
    parser = ToolCallParser(syntax)
    events = []
    for at in range(0, len(reply), step):
        events += parser.feed(reply[at : at + step])
    events += parser.flush()
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    return text, [e.call for e in events if isinstance(e, ToolCallEvent)]


def _obj(name: str, key: str = "arguments", args: dict | None = None) -> str:
    return json.dumps({"name": name, key: ARGS if args is None else args}, ensure_ascii=False)


REPLIES = {
    "hermes": (
        HERMES,
        f"Let me compute.\n<tool_call>\n{_obj('math.calculate')}\n</tool_call>\n"
        f"<tool_call>\n{_obj('clock.now', args={})}\n</tool_call>",
    ),
    "llama3": (
        LLAMA3,
        f"{_obj('math.calculate', 'parameters')}; {_obj('clock.now', 'parameters', {})}",
    ),
    "llama3-tag": (
        LLAMA3,
        f"<|python_tag|>{_obj('math.calculate', 'parameters')}; {_obj('clock.now', 'parameters', {})}",
    ),
    "mistral": (
        MISTRAL,
        f"Let me compute.[TOOL_CALLS][{_obj('math.calculate')}, {_obj('clock.now', args={})}]",
    ),
    "granite": (
        GRANITE,
        f"Let me compute.<|tool_call|>[{_obj('math.calculate')}, {_obj('clock.now', args={})}]",
    ),
    "phi4": (
        PHI4,
        f"Let me compute.<|tool_call|>[{_obj('math.calculate')}, "
        f"{_obj('clock.now', args={})}]<|/tool_call|>",
    ),
    "gemma4": (
        GEMMA4,
        'Let me compute.<|tool_call>call:math.calculate{expression:<|"|>2*(3+4)<|"|>,'
        'note:<|"|>한국어 </tool_call> ]<|"|>}<tool_call|><|tool_call>call:clock.now{}<tool_call|>',
    ),
    "lfm2": (
        LFM2,
        "Let me compute.<|tool_call_start|>[math.calculate(expression='2*(3+4)', "
        "note='한국어 </tool_call> ]'), clock.now()]<|tool_call_end|>",
    ),
}


@pytest.mark.parametrize("family", sorted(REPLIES))
@pytest.mark.parametrize("step", [1, 2, 3, 7, 10_000])
def test_two_calls_split_anywhere(family: str, step: int) -> None:
    syntax, reply = REPLIES[family]
    text, calls = _run(syntax, reply, step)
    before = {"hermes": "Let me compute.\n", "llama3": "", "llama3-tag": ""}
    assert text == before.get(family, "Let me compute.")
    assert [c.name for c in calls] == ["math.calculate", "clock.now"]
    assert calls[0].arguments == ARGS and calls[1].arguments == {}
    assert all(c.error is None for c in calls)
    assert len({c.id for c in calls}) == 2 and all(len(c.id) == 9 for c in calls)


@pytest.mark.parametrize("step", [1, 4, 10_000])
def test_plain_answers_stream_unchanged(step: int) -> None:
    for syntax, reply in [
        (HERMES, "Use <b>bold</b> or <tool_c but not a call."),
        (MISTRAL, "An [ordinary] answer [TOOL"),
        (LLAMA3, "The answer is 42. {not a call}"),
        (LLAMA3, '  {"answer": 42}'),  # a JSON answer with no "name" stays text
        (PHI4, "<|tool_c"),
    ]:
        text, calls = _run(syntax, reply, step)
        assert calls == [] and text == reply, (syntax.family, reply)


def test_text_streams_before_the_call_is_complete() -> None:
    parser = ToolCallParser(HERMES)
    assert parser.feed("Checking the clock") == [TokenEvent("Checking the clock")]
    assert parser.feed(" now.<tool_") == [TokenEvent(" now.")]  # "<tool_" waits
    assert parser.feed('call>\n{"name": "clock.now", "arg') == []
    (event,) = parser.feed('uments": {}}\n</tool_call>')
    assert isinstance(event, ToolCallEvent) and event.call.name == "clock.now"
    assert parser.flush() == []


@pytest.mark.parametrize(
    ("syntax", "reply", "problem"),
    [
        (
            HERMES,
            '<tool_call>\n{"name": "math.calculate", "arguments": {"expr\n</tool_call>',
            "not valid JSON",
        ),
        (
            HERMES,
            '<tool_call>\n{"name": "math.calculate", "arguments": {"a": 1',
            "not valid JSON",
        ),  # cut off
        (HERMES, '<tool_call>\n{"arguments": {}}\n</tool_call>', "names no tool"),
        (
            HERMES,
            '<tool_call>\n{"name": "x.y", "arguments": [1]}\n</tool_call>',
            "not a JSON object",
        ),
        (HERMES, '<tool_call>\n{"name": "x.y", "arguments": "{bad"}\n</tool_call>', "not JSON"),
        (MISTRAL, '[TOOL_CALLS][{"name": "math.calculate", "arguments": {}', "not valid JSON"),
        (LLAMA3, '{"name": "math.calculate", "parameters": {"a": }', "not valid JSON"),
        (LFM2, "<|tool_call_start|>[math.calculate(1+)]<|tool_call_end|>", "not valid JSON"),
    ],
)
def test_malformed_calls_are_calls_with_an_error(
    syntax: CallSyntax, reply: str, problem: str
) -> None:
    text, calls = _run(syntax, reply, 3)
    assert text == ""
    (call,) = calls
    assert call.error and problem in call.error
    assert call.arguments == {} and call.raw_arguments
    if '"name": "math.calculate"' in reply:
        assert call.name == "math.calculate"


def test_arguments_written_as_a_json_string_are_read() -> None:
    reply = '<tool_call>{"name": "clock.now", "arguments": "{\\"timezone\\": \\"Asia/Seoul\\"}"}</tool_call>'
    _, (call,) = _run(INJECTED, reply, 5)
    assert call.arguments == {"timezone": "Asia/Seoul"} and call.error is None


def test_finish_reason_is_tool_calls_only_when_calls_were_made() -> None:
    stats = GenerationStats()
    reply = [
        TokenEvent("Now: <tool_call>"),
        TokenEvent('{"name": "clock.now", "arguments": {}}</tool_call>'),
    ]
    events = list(with_tool_calls(iter([*reply, DoneEvent(stats, "stop")]), HERMES))
    assert [type(e).__name__ for e in events] == ["TokenEvent", "ToolCallEvent", "DoneEvent"]
    assert events[-1].finish_reason == "tool_calls"
    plain = list(with_tool_calls(iter([TokenEvent("Hi"), DoneEvent(stats, "stop")]), HERMES))
    assert plain[-1].finish_reason == "stop"
    cut = list(with_tool_calls(iter([reply[0], DoneEvent(stats, "length")]), HERMES))
    assert cut[-1].finish_reason == "length" and "cut off" in (cut[1].call.error or "")


@pytest.mark.parametrize("step", [1, 5, 10_000])
def test_gpt_oss_calls_are_messages_to_functions(step: int) -> None:
    """gpt-oss (harmony): thinking on the analysis channel, then a commentary message addressed
    to=functions.NAME whose body is the arguments; the reply stops at <|call|>."""
    from chatapp.domain import ReasoningEvent
    from chatapp.engine.reasoning import KNOWN_FORMATS, ReasoningSplitter
    from chatapp.engine.tool_call_syntax import HARMONY

    harmony = next(f for f in KNOWN_FORMATS if f.name == "harmony")
    splitter = ReasoningSplitter(harmony, "<|start|>assistant")
    reply = (
        "<|channel|>analysis<|message|>Need the calculator.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.math.calculate "
        '<|constrain|>json<|message|>{"expression": "6*7"}'
    )
    pieces = []
    for at in range(0, len(reply), step):
        pieces += splitter.feed(reply[at : at + step])
    pieces += splitter.flush()
    events = list(with_tool_calls(iter([*pieces, DoneEvent(GenerationStats(), "stop")]), HARMONY))
    assert (
        "".join(e.text for e in events if isinstance(e, ReasoningEvent)) == "Need the calculator."
    )
    assert not [e for e in events if isinstance(e, TokenEvent)]
    (call,) = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert (call.name, call.arguments, call.error) == (
        "math.calculate",
        {"expression": "6*7"},
        None,
    )
    assert events[-1].finish_reason == "tool_calls"


def test_gpt_oss_final_answers_stay_text() -> None:
    from chatapp.engine.reasoning import KNOWN_FORMATS, ReasoningSplitter
    from chatapp.engine.tool_call_syntax import HARMONY

    harmony = next(f for f in KNOWN_FORMATS if f.name == "harmony")
    splitter = ReasoningSplitter(harmony, "<|start|>assistant")
    pieces = splitter.feed("<|channel|>final<|message|>It is 42 (to=functions.x is just text).")
    pieces += splitter.flush()
    events = list(with_tool_calls(iter([*pieces, DoneEvent(GenerationStats(), "stop")]), HARMONY))
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)).startswith("It is 42")
    assert events[-1].finish_reason == "stop"


def test_gemma4_calls_read_back_what_its_template_writes() -> None:
    from chatapp.domain import ChatMessage
    from chatapp.engine.chat_formats import ChatTemplate

    source = (Path(__file__).parent.parent / "data" / "chat_templates" / "gemma4.jinja").read_text(
        encoding="utf-8"
    )
    arguments = {"query": "a, b: {c}", "top_k": 3, "exact": True, "tags": ["x", "y"]}
    call = ToolCall("a1b2c3d4e", "documents.search", arguments)
    rendered = ChatTemplate(source=source, name="gguf").render(
        [ChatMessage("user", "Find."), ChatMessage("assistant", "", tool_calls=(call,))], False
    )
    block = rendered[rendered.index("<|tool_call>") : rendered.index("<tool_call|>") + 12]
    _, (parsed,) = _run(GEMMA4, block, 4)
    assert (parsed.name, parsed.arguments, parsed.error) == (call.name, arguments, None)

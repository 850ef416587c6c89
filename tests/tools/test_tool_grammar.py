"""The tool grammar from schemas a tool server chose: hostile ones (huge lengths and counts,
deep nesting, loops, patterns the converter rejects, not a schema at all) give a small grammar
at once, that tool's arguments falling back to "any JSON object", with one escaped log line."""

from __future__ import annotations

import logging
import time

import pytest

from chatapp.domain import ToolSpec
from chatapp.engine.tool_call_syntax import HERMES
from chatapp.engine.tool_grammar import MAX_STRING_CHARS, tool_grammar


def _deep(levels: int) -> dict:
    schema: dict = {}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


GOOD = ToolSpec("clock.now", "Time.", {"type": "object", "properties": {}})
HOSTILE = {
    "ref loop": {"$ref": "#"},
    "maxLength 10**9": {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 10**9}},
    },
    "minItems 10**6": {
        "type": "object",
        "properties": {"a": {"type": "array", "minItems": 10**6, "items": {"type": "integer"}}},
    },
    "300 levels": _deep(300),
    "pattern": {"type": "object", "properties": {"a": {"type": "string", "pattern": "(a+)+"}}},
    "not a schema": {"type": 5},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_schemas_give_a_small_grammar_at_once(name: str, caplog) -> None:
    spec = ToolSpec("evil.\x1b[31mtool", "x", HOSTILE[name])
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        grammar = tool_grammar(HERMES, [GOOD, spec], "auto")
    assert time.perf_counter() - started < 2
    assert grammar is not None and len(grammar) < 50_000
    assert '\\"name\\": \\"evil.' in grammar and '\\"clock.now\\"' in grammar
    for record in caplog.records:
        assert "\x1b" not in record.getMessage()


def test_strings_are_bounded_and_strict() -> None:
    spec = ToolSpec(
        "math.calculate", "x", {"type": "object", "properties": {"e": {"type": "string"}}}
    )
    grammar = tool_grammar(HERMES, [spec], "required")
    assert grammar is not None
    assert f"char{{1,{MAX_STRING_CHARS}}}" in grammar
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in grammar  # no raw control characters in JSON strings
    assert grammar.startswith("root ::= calls\n")


def test_nothing_to_constrain() -> None:
    assert tool_grammar(HERMES, [GOOD], "none") is None
    assert tool_grammar(HERMES, [], "auto") is None
    assert tool_grammar(HERMES, [GOOD], "no.such") is None
    assert tool_grammar(None, [GOOD], "auto") is None

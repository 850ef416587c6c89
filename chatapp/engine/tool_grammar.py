"""A llama.cpp GBNF grammar that admits exactly "a plain answer, or calls to the offered tools
whose arguments match their JSON schemas", written in the model family's own call syntax.

Each tool's argument schema becomes grammar rules through llama-cpp-python's JSON-schema
converter; a schema it cannot convert (or an unbounded one from an MCP server) falls back to
"any JSON object" for that tool, so a call is still well-formed JSON naming an offered tool.
``tool_choice`` "required" admits only calls, a tool's name only calls to that tool. The plain
answer may not contain the text that opens a call in that syntax (its first two characters), so
every call the parser sees was made under the grammar. Families whose calls are not JSON
(LFM2's Python-style list) get no grammar (None).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from chatapp.domain import ToolSpec
from chatapp.engine.tool_call_syntax import CallSyntax
from chatapp.terminal_text import safe_for_terminal

log = logging.getLogger(__name__)

_ANY_OBJECT = {"type": "object"}
MAX_STRING_CHARS = 200
"""A string argument without a length of its own holds 1 to this many characters: a small model
cannot write one until its tokens run out (which would cut the call off), nor leave it empty
(SmolLM2-135M otherwise called math.calculate with "" again and again)."""
MAX_ARRAY_ITEMS = 64
MAX_SCHEMA_DEPTH = 40
MAX_RULES_CHARS = 200_000
"""Bounds on what one tool's schema may make of the grammar (a hostile server's maxLength of
10**9 took the converter minutes; minItems 10**6 made 18 MB of rules)."""
CALLS_PER_REPLY = 1
"""Calls one constrained reply may make: a small model given room for more keeps calling until
its tokens run out (the last call cut off); the tool loop's next step can call again."""
_ANY_CHAR = r"[^\x00]"


def _literal(text: str) -> str:
    """A GBNF string literal for ``text``."""
    return json.dumps(text, ensure_ascii=False)


def tool_grammar(
    syntax: CallSyntax | None,
    specs: Sequence[ToolSpec],
    choice: str,
    max_calls: int = CALLS_PER_REPLY,
) -> str | None:
    """GBNF text for ``specs`` under ``choice`` in ``syntax`` (None when there is nothing to
    constrain or the syntax is not JSON); at most ``max_calls`` calls in one reply."""
    if (
        syntax is None
        or syntax.body in ("python", "harmony", "gemma4")
        or choice == "none"
        or not specs
    ):
        return None
    from llama_cpp.llama_grammar import SchemaConverter

    tools = specs if choice in ("auto", "required") else [s for s in specs if s.name == choice]
    if not tools:
        return None
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    alternatives = []
    key = syntax.arguments_key
    for index, spec in enumerate(tools):
        rule = f"args-{index}"
        before = dict(converter._rules)
        try:
            schema = _tamed(json.loads(json.dumps(spec.parameters)))
            converter.visit(converter.resolve_refs(schema, rule), rule)
            if sum(map(len, converter._rules.values())) > MAX_RULES_CHARS:
                raise ValueError("its grammar would be too large")
        except Exception as exc:  # a schema the converter does not take: any JSON object
            log.warning(  # the name and the problem come from a tool server: shown escaped
                "tool %s: its argument schema is not constrained (%s)",
                safe_for_terminal(spec.name),
                safe_for_terminal(str(exc)[:200]),
            )
            converter._rules = before
            converter.visit(_ANY_OBJECT, rule)
        head = '{"name": ' + json.dumps(spec.name, ensure_ascii=False) + f', "{key}": '
        alternatives.append(f'{_literal(head)} {rule} "}}"')
    lines = [f"call ::= {' | '.join(alternatives)}"]
    more = max(0, max_calls - 1)
    if syntax.body == "object" and syntax.close:
        opener, close = _literal(syntax.open + "\n"), _literal("\n" + syntax.close)
        lines.append(f'calls ::= {opener} call {close} ("\\n" {opener} call {close}){{0,{more}}}')
    elif syntax.body == "object":  # Llama 3: the reply is the call
        lines.append(f'calls ::= call ("; " call){{0,{more}}}')
    else:
        opener, close = _literal(syntax.open + "["), _literal("]" + syntax.close)
        lines.append(f'calls ::= {opener} call (", " call){{0,{more}}} {close}')
    first = syntax.open[0]
    if syntax.at_start:
        lines.append(f"answer ::= [^{_escape(first)}<\\x00] {_ANY_CHAR}*")
    else:
        second = syntax.open[1]
        lines.append(
            f"answer ::= ([^{_escape(first)}\\x00] | {_literal(first)} [^{_escape(second)}\\x00])+"
        )
    if choice == "auto":
        root = "root ::= calls | answer" if syntax.at_start else "root ::= answer? calls?"
        # (answer? calls? admits the empty reply too: the model may end at once.)
    else:
        root = "root ::= calls"
    rules = (
        converter.format_grammar()
        .replace(_LOOSE_CHAR, _STRICT_CHAR)
        .replace(
            'string ::= "\\"" char* "\\"" space',
            f'string ::= "\\"" char{{1,{MAX_STRING_CHARS}}} "\\"" space',
        )
    )
    return "\n".join([root, *lines, rules])


# The converter lets a string hold raw control characters (a newline), which JSON forbids.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def _tamed(schema: Any, depth: int = 0) -> Any:
    """``schema`` with lengths and counts over what a grammar can hold cut down to
    ``MAX_STRING_CHARS`` / ``MAX_ARRAY_ITEMS`` (still within the schema: stricter); ValueError
    for one nested too deep or whose minimum is over them (a tool server's schema is data)."""
    if depth > MAX_SCHEMA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_SCHEMA_DEPTH}")
    if isinstance(schema, list):
        return [_tamed(item, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _tamed(value, depth + 1) for key, value in schema.items()}
    for low, high, cap in (
        ("minLength", "maxLength", MAX_STRING_CHARS),
        ("minItems", "maxItems", MAX_ARRAY_ITEMS),
        ("minProperties", "maxProperties", MAX_ARRAY_ITEMS),
    ):
        if isinstance(out.get(low), int) and out[low] > cap:
            raise ValueError(f"{low} {out[low]} is over {cap}")
        if isinstance(out.get(high), int) and out[high] > cap:
            out[high] = cap
    return out


def _escape(char: str) -> str:
    """A character as it may stand inside a GBNF character class."""
    if char in "]\\^-[":
        return "\\" + char
    return char

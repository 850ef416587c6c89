"""How each model family writes a call to a tool, and a parser that finds calls while a reply
streams.

Families: Hermes / Qwen2.5 / Qwen3 / SmolLM3 ``<tool_call>{"name":…, "arguments":…}</tool_call>``;
Llama 3.x a JSON object ``{"name":…, "parameters":…}`` as the whole reply (or after
``<|python_tag|>``); Mistral ``[TOOL_CALLS][{…}, …]``; Granite ``<|tool_call|>[{…}]``; Phi-4-mini
``<|tool_call|>[{…}]<|/tool_call|>``; LFM2 ``<|tool_call_start|>[name(arg=…)]<|tool_call_end|>``;
gpt-oss a harmony message ``to=functions.NAME`` (the reasoning splitter marks it, ``HARMONY_CALL``);
Gemma 4 ``<|tool_call>call:NAME{key:<|"|>text<|"|>,n:1}<tool_call|>``.
A template that describes no tools itself (SmolLM2, Gemma 2/3, Phi-3.5…) gets the Hermes
convention in its system prompt (``tool_prompt``). Text before a call streams as it comes; the
call's own text is held back and becomes one ``ToolCallEvent`` per call (a call that does not
parse keeps its text in ``raw_arguments`` and says why in ``error``). No llama.cpp import.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from chatapp.domain import DoneEvent, StreamEvent, TokenEvent, ToolCall, ToolCallEvent
from chatapp.engine.reasoning import HARMONY_CALL

Body = Literal["object", "list", "python", "harmony", "gemma4"]


@dataclass(frozen=True)
class CallSyntax:
    """One family's call syntax: a call block opens with ``open`` and ends with ``close`` (or
    with the reply, when ``close`` is empty) and holds ``body``: one JSON object, a JSON list
    of them, or a Python-style list of calls."""

    family: str
    open: str
    close: str
    body: Body
    arguments_key: str = "arguments"
    at_start: bool = False
    """The call must be the whole reply (Llama 3: a reply opening with ``{``)."""
    native: bool = True
    """The model's template describes the tools itself (else ``tool_prompt`` does)."""
    alt_open: tuple[str, ...] = ()
    """Other texts that open a call block (Llama 3's ``<|python_tag|>``)."""
    quote: str = ""
    """Gemma 4 quotes strings with a special token (``<|"|>``)."""

    @property
    def markers(self) -> tuple[str, ...]:
        """The special-token texts that must reach the parser as text."""
        found = (self.open, self.close, *self.alt_open, self.quote)
        return tuple(m for m in found if m and m != "{")


HERMES = CallSyntax("hermes", "<tool_call>", "</tool_call>", "object")
LLAMA3 = CallSyntax(
    "llama3", "{", "", "object", arguments_key="parameters", at_start=True,
    alt_open=("<|python_tag|>",),
)  # fmt: skip
MISTRAL = CallSyntax("mistral", "[TOOL_CALLS]", "", "list")
GRANITE = CallSyntax("granite", "<|tool_call|>", "", "list")
PHI4 = CallSyntax("phi4", "<|tool_call|>", "<|/tool_call|>", "list")
LFM2 = CallSyntax("lfm2", "<|tool_call_start|>", "<|tool_call_end|>", "python")
INJECTED = replace(HERMES, family="hermes-prompt", native=False)
GEMMA4 = CallSyntax("gemma4", "<|tool_call>", "<tool_call|>", "gemma4", quote='<|"|>')
HARMONY = CallSyntax("harmony", HARMONY_CALL, "", "harmony")
"""gpt-oss: a message ``to=functions.NAME`` whose body is the arguments; the splitter marks it."""


def call_syntax(source: str, takes_tools: bool) -> CallSyntax:
    """The call syntax of a chat template (its Jinja ``source``); ``takes_tools``: it reads the
    ``tools`` variable."""
    if not takes_tools:
        return INJECTED
    if "<|channel|>" in source:
        return HARMONY
    if "<|tool_call>" in source:
        return GEMMA4
    if "[TOOL_CALLS]" in source:
        return MISTRAL
    if "<|tool_call_start|>" in source:
        return LFM2
    if "<|tool_call|>" in source:
        return PHI4 if "<|/tool_call|>" in source else GRANITE
    if "<tool_call>" in source:
        return HERMES
    if "<|python_tag|>" in source or ('"parameters"' in source and "<|eot_id|>" in source):
        return LLAMA3
    return HERMES


def new_call_id() -> str:
    """A call id of 9 letters and digits (Mistral's templates insist on that shape)."""
    return uuid.uuid4().hex[:9]


def render_call(syntax: CallSyntax, calls: Sequence[ToolCall]) -> str:
    """``calls`` written in the syntax as the model would write them (for templates that take
    the calls as text, the injected convention)."""
    if syntax.body == "object":
        blocks = [
            json.dumps({"name": c.name, syntax.arguments_key: c.arguments}, ensure_ascii=False)
            for c in calls
        ]
        return "\n".join(f"{syntax.open}\n{b}\n{syntax.close}" for b in blocks)
    items = [{"name": c.name, "arguments": c.arguments} for c in calls]
    return f"{syntax.open}{json.dumps(items, ensure_ascii=False)}{syntax.close}"


_TEXT, _CALL, _PLAIN = 0, 1, 2
_NAME_RE = re.compile(r'"name"\s*:\s*"([^"\\]{1,200})"')


class ToolCallParser:
    """Splits streamed answer text into plain text and calls (see the module docstring)."""

    def __init__(self, syntax: CallSyntax) -> None:
        self.syntax = syntax
        self.openers = tuple(o for o in (*syntax.alt_open, syntax.open) if o)
        self.calls: list[ToolCall] = []
        self._state = _TEXT
        self._buffer = ""
        self._body = ""
        self._space = ""  # whitespace after a call, sent only when more text follows it
        self._cut = False

    def feed(self, text: str) -> list[TokenEvent | ToolCallEvent]:
        out: list[TokenEvent | ToolCallEvent] = []
        self._buffer += text
        while self._buffer:
            if self._state == _PLAIN:
                self._emit(self._buffer, out)
                self._buffer = ""
            elif self._state == _TEXT:
                if not self._scan_text(out):
                    break
            elif not self._scan_call(out):
                break
        return out

    def flush(self, cut: bool = False) -> list[TokenEvent | ToolCallEvent]:
        """The end of the reply: a call still open is parsed as it stands (``cut``: the reply
        ran out of tokens, said in the error of a call that does not parse)."""
        out: list[TokenEvent | ToolCallEvent] = []
        self._cut = cut
        body = self._body + self._buffer
        if self._state == _CALL and self.syntax.at_start and '"name"' not in body:
            self._emit(body, out, final=True)  # a reply that merely opens with "{"
        elif self._state == _CALL:
            self._finish_call(body, out)
        elif self._buffer:
            self._emit(self._buffer, out, final=True)
        self._buffer = self._body = ""
        return out

    # -- text ----------------------------------------------------------------------------------

    def _scan_text(self, out: list[TokenEvent | ToolCallEvent]) -> bool:
        """Handle text outside calls; False when the rest must wait for more text."""
        buffer = self._buffer
        if self.syntax.at_start:
            head = buffer.lstrip()
            for opener in self.openers:
                if head.startswith(opener):
                    skip = 0 if opener == "{" else len(buffer) - len(head) + len(opener)
                    self._open_call(buffer[skip:])
                    return True
            if not head or any(o.startswith(head) for o in self.openers):
                return False  # maybe the start of a call
            self._state = _PLAIN
            return True
        found = [(buffer.find(o), o) for o in self.openers]
        hits = [(at, o) for at, o in found if at >= 0]
        if hits:
            at, opener = min(hits)
            self._emit(buffer[:at], out)
            self._open_call(buffer[at + len(opener) :])
            return True
        keep = _partial_suffix(buffer, self.openers)
        self._emit(buffer[: len(buffer) - keep], out)
        self._buffer = buffer[len(buffer) - keep :]
        return False

    def _open_call(self, rest: str) -> None:
        self._state, self._body, self._buffer = _CALL, "", rest

    def _emit(self, text: str, out: list[TokenEvent | ToolCallEvent], final: bool = False) -> None:
        if not text:
            return
        if self.calls and not text.strip():
            if not final:
                self._space += text
            return
        out.append(TokenEvent(self._space + text))
        self._space = ""

    # -- calls ---------------------------------------------------------------------------------

    def _scan_call(self, out: list[TokenEvent | ToolCallEvent]) -> bool:
        close = self.syntax.close
        if not close:  # the call runs to the end of the reply
            self._body += self._buffer
            self._buffer = ""
            return False
        text = self._body + self._buffer
        at = text.find(close)
        quotes = "\"'" if self.syntax.body == "python" else '"'
        while at >= 0 and _inside_string(text[:at], quotes):  # "</tool_call>" in an argument
            at = text.find(close, at + 1)
        if at < 0:
            self._body, self._buffer = text, ""
            return False
        self._finish_call(text[:at], out)
        self._state, self._body, self._buffer = _TEXT, "", text[at + len(close) :]
        return True

    def _finish_call(self, body: str, out: list[TokenEvent | ToolCallEvent]) -> None:
        calls = parse_calls(self.syntax, body)
        if self._cut:
            calls = [
                replace(c, error=f"cut off by the reply's token limit (max_tokens); {c.error}")
                if c.error
                else c
                for c in calls
            ]
        self.calls += calls
        out.extend(ToolCallEvent(call) for call in calls)


def parse_calls(syntax: CallSyntax, body: str) -> list[ToolCall]:
    """The calls in one call block's text (a block that does not parse: one call with the
    error set, its text kept)."""
    text = body.strip()
    try:
        if syntax.body == "python":
            return _python_calls(text)
        if syntax.body == "gemma4":
            return [_gemma_call(text, syntax.quote)]
        if syntax.body == "harmony":
            name, _, arguments = body.partition("\n")
            return [_call_from({"name": name.strip(), "arguments": arguments}, "arguments", text)]
        if syntax.body == "list" or text.startswith("["):
            value = json.loads(text)
            items = value if isinstance(value, list) else [value]
        elif syntax.at_start:
            items = [json.loads(part) for part in _split_semicolons(text)]
        else:
            items = [json.loads(text)]
    except (ValueError, SyntaxError, RecursionError) as exc:
        return [_broken(text, f"the call is not valid JSON ({_short(exc)})")]
    if not items:
        return [_broken(text, "the call names no tool")]
    return [_call_from(item, syntax.arguments_key, text) for item in items]


def _call_from(item: Any, arguments_key: str, text: str) -> ToolCall:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        return _broken(text, "the call names no tool")
    name = item["name"]
    arguments = item.get(arguments_key, item.get("arguments", item.get("parameters", {})))
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return ToolCall(new_call_id(), name, {}, raw, f"arguments are not JSON ({_short(exc)})")
    if not isinstance(arguments, dict):
        return ToolCall(new_call_id(), name, {}, raw, "arguments are not a JSON object")
    return ToolCall(new_call_id(), name, arguments, raw)


def _broken(text: str, error: str) -> ToolCall:
    match = _NAME_RE.search(text)
    return ToolCall(new_call_id(), match.group(1) if match else "", {}, text[:100_000], error)


def _python_calls(text: str) -> list[ToolCall]:
    """``[name(a=1, b="x"), other.tool()]`` (LFM2): names may be dotted; values literals."""
    tree = ast.parse(text, mode="eval").body
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            calls.append(_broken(text, "the call is not name(key=value, …)"))
            continue
        name = ast.unparse(node.func)
        arguments = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        raw = json.dumps(arguments, ensure_ascii=False, default=str)
        calls.append(ToolCall(new_call_id(), name, arguments, raw))
    return calls


def _gemma_call(text: str, quote: str) -> ToolCall:
    """``call:NAME{key:value,…}`` (Gemma 4): strings between ``quote`` tokens, keys bare."""
    if not text.startswith("call:") or "{" not in text:
        raise ValueError("the call is not call:NAME{…}")
    brace = text.index("{")
    arguments, end = _gemma_value(text, brace, quote)
    if text[end:].strip() or not isinstance(arguments, dict):
        raise ValueError("text after the call's arguments")
    raw = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(new_call_id(), text[5:brace].strip(), arguments, raw)


def _gemma_value(text: str, at: int, quote: str) -> tuple[Any, int]:
    """One value of Gemma 4's argument syntax at ``at``: (value, where it ends)."""
    while at < len(text) and text[at].isspace():
        at += 1
    if text.startswith(quote, at):
        end = text.index(quote, at + len(quote))
        return text[at + len(quote) : end], end + len(quote)
    if at < len(text) and text[at] in "{[":
        mapping, closing = text[at] == "{", "}" if text[at] == "{" else "]"
        items: Any = {} if mapping else []
        at += 1
        while True:
            while at < len(text) and text[at] in " \n,":
                at += 1
            if at >= len(text):
                raise ValueError("the call's arguments are cut off")
            if text[at] == closing:
                return items, at + 1
            if mapping:
                colon = text.index(":", at)
                key = text[at:colon].strip().replace(quote, "")
                items[key], at = _gemma_value(text, colon + 1, quote)
            else:
                item, at = _gemma_value(text, at, quote)
                items.append(item)
    end = at
    while end < len(text) and text[end] not in ",}]":
        end += 1
    word = text[at:end].strip()
    try:
        return json.loads(word), end
    except ValueError:
        return word, end


def _split_semicolons(text: str) -> list[str]:
    """Llama 3 may write several JSON calls separated by ``;``."""
    decoder, parts, at = json.JSONDecoder(), [], 0
    while at < len(text):
        value, end = decoder.raw_decode(text, at)
        parts.append(json.dumps(value))
        at = end
        while at < len(text) and text[at] in " \t\r\n;":
            at += 1
    return parts


def _inside_string(text: str, quotes: str) -> bool:
    """Whether ``text`` ends inside a quoted string (JSON, or Python with ``'`` too)."""
    quote, escaped = "", False
    for char in text:
        if escaped:
            escaped = False
        elif quote:
            if char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in quotes:
            quote = char
    return bool(quote)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _partial_suffix(text: str, markers: Iterable[str]) -> int:
    """Length of the longest end of ``text`` that is the start of one of ``markers``."""
    best = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:size]):
                best = size
                break
    return best


def with_tool_calls(events: Iterator[StreamEvent], syntax: CallSyntax) -> Iterator[StreamEvent]:
    """A reply's events with its answer text parsed for calls; a reply that ended normally
    after making calls finishes with reason ``tool_calls``."""
    parser = ToolCallParser(syntax)
    for event in events:
        if isinstance(event, TokenEvent):
            yield from parser.feed(event.text)
        elif isinstance(event, DoneEvent):
            yield from parser.flush(cut=event.finish_reason == "length")
            if parser.calls and event.finish_reason == "stop":
                event = DoneEvent(stats=event.stats, finish_reason="tool_calls", error=event.error)
            yield event
        else:
            yield event

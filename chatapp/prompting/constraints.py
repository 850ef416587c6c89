"""Output constraints and parsing.

``choices_grammar`` compiles a list of labels into llama.cpp GBNF so the sampler can only emit
one of them. With chain-of-thought the reasoning stays free and the extracted answer is checked
against the choices instead: a grammar cannot make a small model end its reasoning in time (it
runs to max_tokens and never reaches the answer), so there it would cost answers, not save them. ``parse_output``
turns raw model text into the answer a user or the evaluator needs, and says whether it is valid:
a label among the choices, JSON that matches the schema, a verbatim span of the passage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatapp.prompting.schema import OutputSpec, Reasoning


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal. Non-ASCII (Korean…) stays UTF-8, which llama.cpp's
    grammar parser reads; quotes, backslashes and control characters are escaped."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def choices_grammar(choices: list[str]) -> str:
    """GBNF accepting exactly one of ``choices`` (and then only the end of the reply)."""
    if not choices:
        raise ValueError("a choices grammar needs at least one choice")
    return f"root ::= {' | '.join(gbnf_literal(c) for c in choices)}\n"


def split_choices(text: str) -> list[str]:
    """User-given labels: comma- or newline-separated, blanks dropped, order kept, no repeats."""
    seen: dict[str, None] = {}
    for part in re.split(r"[,\n]", text):
        label = part.strip()
        if label:
            seen.setdefault(label, None)
    return list(seen)


@dataclass
class ParsedOutput:
    """What came out of the model, made usable."""

    raw: str
    answer: str
    """The part after the reasoning (the whole text when there is no reasoning)."""
    reasoning: str | None
    value: Any
    """The label (mapped through ``labels``), the decoded JSON, or the answer text."""
    valid: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.answer,
            "parsed": self.value,
            "reasoning": self.reasoning,
            "valid": self.valid,
            "error": self.error,
        }


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_EDGE = " \t\r\n\"'`*.,:;!?。、「」『』“”‘’"


def extract_answer(text: str, rule: Reasoning) -> tuple[str | None, str | None]:
    """(reasoning, answer) by the template's rule; answer None when nothing matched."""
    matches = list(re.finditer(rule.answer_pattern, text))
    if matches:
        last = matches[-1]
        return text[: last.start()].strip() or None, last.group(1).strip()
    if rule.fallback == "last_number":
        numbers = list(_NUMBER.finditer(text))
        if numbers:
            return text.strip() or None, numbers[-1].group(0).replace(",", "")
    if rule.fallback == "last_line":
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        if lines:
            return "\n".join(lines[:-1]).strip() or None, lines[-1].strip()
    return text.strip() or None, None


def match_choice(answer: str, choices: list[str], labels: dict[str, str]) -> str | None:
    """The choice ``answer`` names: its first line compared case-insensitively with the edges'
    quotes/punctuation trimmed; a choice's label also counts, and so does a leading "(X)"."""
    first = answer.strip().splitlines()[0] if answer.strip() else ""
    candidate = first.strip(_EDGE).casefold()
    by_name = {c.casefold(): c for c in choices}
    by_label = {labels[c].casefold(): c for c in choices if c in labels}
    for table in (by_name, by_label):
        if candidate in table:
            return table[candidate]
    lettered = re.match(r"^\(?([^\s()]+)\)", first.strip())
    if lettered and lettered.group(1).casefold() in by_name:
        return by_name[lettered.group(1).casefold()]
    return None


def find_span(answer: str, passage: str) -> str | None:
    """The passage's own text for ``answer`` when it occurs there verbatim (case and runs of
    whitespace aside, edges' quotes/punctuation trimmed), else None."""
    words = answer.strip().strip(_EDGE).split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    found = re.search(pattern, passage, re.IGNORECASE)
    return found.group(0) if found else None


def parse_output(
    raw: str,
    output: OutputSpec,
    *,
    choices: list[str] | None = None,
    reasoning: Reasoning | None = None,
    span_source: str | None = None,
) -> ParsedOutput:
    """Parse ``raw`` model text by the template's output spec."""
    import jsonschema

    thinking: str | None = None
    answer = raw.strip()
    if reasoning is not None:
        thinking, found = extract_answer(raw, reasoning)
        if found is None:
            return ParsedOutput(raw, "", thinking, None, False, "no final answer found")
        answer = found
    if output.type == "choices":
        chosen = match_choice(answer, choices or [], output.labels)
        if chosen is None:
            shown = answer if len(answer) <= 40 else answer[:39] + "…"
            return ParsedOutput(
                raw, answer, thinking, None, False, f"{shown!r} is not one of the choices"
            )
        return ParsedOutput(raw, answer, thinking, output.labels.get(chosen, chosen), True)
    if output.type == "json":
        try:
            value = json.loads(answer)
        except json.JSONDecodeError as exc:
            return ParsedOutput(raw, answer, thinking, None, False, f"not valid JSON ({exc.msg})")
        try:
            jsonschema.validate(value, output.json_schema or {})
        except jsonschema.ValidationError as exc:
            return ParsedOutput(
                raw, answer, thinking, value, False, f"does not match the schema: {exc.message}"
            )
        return ParsedOutput(raw, answer, thinking, value, True)
    if span_source is not None:
        span = find_span(answer, span_source)
        if span is None:
            return ParsedOutput(
                raw, answer, thinking, None, False, "the answer is not a span of the passage"
            )
        return ParsedOutput(raw, answer, thinking, span, True)
    if not answer:
        return ParsedOutput(raw, answer, thinking, None, False, "empty output")
    return ParsedOutput(raw, answer, thinking, answer, True)

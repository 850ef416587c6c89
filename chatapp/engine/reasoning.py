"""A model's thinking, apart from its answer.

Models that reason before answering mark the reasoning in their reply, each family its own way:
``<think>…</think>`` (DeepSeek-R1 distills, Qwen3, SmolLM3, EXAONE 4, LFM2.5, Granite 3.3),
``<thought>…</thought>`` (EXAONE Deep), ``<seed:think>`` (Seed-OSS), ``[THINK]…[/THINK]``
(Magistral), Gemma 4's ``<|channel>thought … <channel|>``, and gpt-oss's harmony channels
(``<|channel|>analysis<|message|>…<|end|>`` then ``<|channel|>final<|message|>…``).
``detect_reasoning_format`` picks the format from the chat template's text and the vocabulary;
``ReasoningSplitter`` turns the streamed reply text into ``ReasoningEvent``s and ``TokenEvent``s,
starting in the state the template's generation prompt left the reply in (a DeepSeek-R1
template opens ``<think>`` itself, a Qwen3 template with thinking off closes an empty block).
``ThinkingSupport`` says what the template lets a caller switch. Pure Python, no llama.cpp.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from chatapp.domain import ReasoningEvent, Thinking, TokenEvent
from chatapp.errors import UsageError

Style = Literal["tags", "harmony"]
Piece = ReasoningEvent | TokenEvent


@dataclass(frozen=True)
class ReasoningFormat:
    """How one family of chat templates marks thinking in a reply."""

    name: str
    open: str
    """Text that starts the thinking (tags style: only at the start of a reply)."""
    close: str
    """Text that ends it; the answer follows."""
    style: Style = "tags"
    strip: tuple[str, ...] = ()
    """Wrappers around the answer that are dropped from it (Granite's ``<response>``)."""

    @property
    def closing_text(self) -> str:
        """What ends the thinking and starts the answer, to close a block the model left open."""
        if self.style == "harmony":
            return "<|end|><|start|>assistant<|channel|>final<|message|>"
        return f"\n{self.close}\n\n"

    @property
    def markers(self) -> tuple[str, ...]:
        """Every marker text this format reads (to render their tokens as text)."""
        if self.style == "harmony":
            return HARMONY_MARKERS
        return (self.open, self.close, *self.strip)


HARMONY_MARKERS = (
    "<|start|>",
    "<|channel|>",
    "<|message|>",
    "<|constrain|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
)

THINK = ReasoningFormat("think", "<think>", "</think>")
GRANITE = ReasoningFormat("think", "<think>", "</think>", strip=("<response>", "</response>"))
KNOWN_FORMATS: tuple[ReasoningFormat, ...] = (
    ReasoningFormat("harmony", "<|channel|>analysis<|message|>", "<|end|>", style="harmony"),
    ReasoningFormat("gemma4", "<|channel>thought", "<channel|>"),
    ReasoningFormat("seed", "<seed:think>", "</seed:think>"),
    ReasoningFormat("thought", "<thought>", "</thought>"),
    ReasoningFormat("magistral", "[THINK]", "[/THINK]"),
    THINK,
)
_TEMPLATE_SIGNS = {
    "harmony": ("<|channel|>",),
    "gemma4": ("<|channel>", "<channel|>"),
}


def detect_reasoning_format(
    template_source: str | None, vocabulary: Collection[str] = ()
) -> ReasoningFormat | None:
    """The thinking format a model uses: named by its chat template, or (for templates that
    never mention it) present in its vocabulary as both an opening and a closing token."""
    text = template_source or ""
    for fmt in KNOWN_FORMATS:
        signs = _TEMPLATE_SIGNS.get(fmt.name, (fmt.open, fmt.close))
        if any(sign in text for sign in signs):
            if fmt is THINK and "<response>" in text and "</response>" in text:
                return GRANITE
            return fmt
    for fmt in KNOWN_FORMATS:
        if fmt.style == "tags" and fmt.open in vocabulary and fmt.close in vocabulary:
            return fmt
    return None


@dataclass(frozen=True)
class ThinkingSupport:
    """What a model's chat template does about thinking."""

    format: ReasoningFormat | None = None
    """How thinking shows in a reply; None when the model does not think."""
    switch: str | None = None
    """The template variable that turns thinking on and off (``enable_thinking``, ``thinking``)."""
    default_on: bool = False
    """Whether the model thinks when nobody sets the switch."""
    efforts: tuple[str, ...] = ()
    """Reasoning efforts the template takes (gpt-oss: low, medium, high); empty if none."""

    @property
    def thinks(self) -> bool:
        return self.format is not None

    @property
    def can_switch(self) -> bool:
        return self.format is not None and self.switch is not None

    def describe(self) -> str:
        """One line for ``models info`` and the UI: does it think, and what can be set."""
        if self.format is None:
            return "no"
        fmt = self.format
        marks = "analysis/final channels" if fmt.style == "harmony" else f"{fmt.open}…{fmt.close}"
        parts = [f"yes ({marks})"]
        if self.switch:
            state = "on" if self.default_on else "off"
            parts.append(f"switch: {self.switch}, {state} by default")
        else:
            parts.append("always" if self.default_on else "when the model chooses")
        if self.efforts:
            parts.append(f"effort: {'/'.join(self.efforts)}")
        return "; ".join(parts)

    def template_variables(
        self, thinking: Thinking, effort: str | None, *, constrained: bool = False
    ) -> dict[str, Any]:
        """Variables to render the chat template with for these settings. Under a grammar or
        JSON schema (``constrained``) thinking is switched off unless asked for explicitly."""
        values: dict[str, Any] = {}
        if self.can_switch and self.switch:
            if thinking == "on":
                values[self.switch] = True
            elif thinking == "off" or constrained:
                values[self.switch] = False
        if effort is not None:
            if not self.efforts:
                return values  # nothing takes it; a template without efforts ignores it
            if effort not in self.efforts:
                raise UsageError(
                    f"reasoning effort {effort!r}: this model takes {', '.join(self.efforts)}"
                )
            values["reasoning_effort"] = effort
        return values


NO_THINKING = ThinkingSupport()

# Splitter states.
_START, _REASONING, _ANSWER, _HEADER, _BODY, _BETWEEN = range(6)
_HEADER_LIMIT = 200  # a harmony header longer than this is not one: the text is the answer


def _partial_suffix(text: str, markers: Collection[str]) -> int:
    """Length of the longest end of ``text`` that could still grow into one of ``markers``."""
    keep = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), keep, -1):
            if text.endswith(marker[:n]):
                keep = n
                break
    return keep


class ReasoningSplitter:
    """Splits streamed reply text into thinking and answer, holding back only text that could
    still become a marker. ``feed`` returns the events for the new text, ``flush`` the rest.

    ``in_answer`` turns True when the answer has begun (constraints apply from there); with
    ``reasoned`` it tells whether a thinking block came first (False: the reply had none, so
    everything generated so far belongs to the answer).
    """

    def __init__(self, fmt: ReasoningFormat, generation_prompt: str = "") -> None:
        self.format = fmt
        self.reasoned = False
        self._buffer = ""
        self._trim_answer = False  # drop whitespace before the first answer text
        self._trim_reasoning = False  # and before the first thinking text
        self._channel = ""
        self._header = ""  # the start of a harmony header written by the prompt
        self._state = self._initial_state(generation_prompt)

    def _initial_state(self, prompt: str) -> int:
        fmt = self.format
        if fmt.style == "harmony":
            last = max(HARMONY_MARKERS, key=prompt.rfind)
            if prompt.rfind(last) < 0:
                return _HEADER
            if last in ("<|end|>", "<|return|>", "<|call|>"):
                return _BETWEEN
            if last == "<|message|>":
                header = prompt[prompt.rfind("<|start|>") : prompt.rfind("<|message|>")]
                self._channel = _channel_name(header)
                self.reasoned = self._channel == "analysis"
                return _BODY
            # Inside a header (after <|start|>assistant): the rest of it comes from the model.
            self._header = prompt[prompt.rfind("<|start|>") + len("<|start|>") :]
            return _HEADER
        opened, closed = prompt.rfind(fmt.open), prompt.rfind(fmt.close)
        if opened > closed:
            self.reasoned = self._trim_reasoning = True
            return _REASONING
        if closed >= 0:  # the template closed an (empty) block: thinking is off
            self._trim_answer = True
            return _ANSWER
        return _START

    @property
    def in_answer(self) -> bool:
        if self._state == _BODY:
            return self._channel != "analysis"
        return self._state == _ANSWER

    @property
    def in_reasoning(self) -> bool:
        return self._state == _REASONING or (self._state == _BODY and self._channel == "analysis")

    def feed(self, text: str) -> list[Piece]:
        self._buffer += text
        out: list[Piece] = []
        if self.format.style == "harmony":
            self._feed_harmony(out)
        else:
            self._feed_tags(out)
        return out

    def flush(self) -> list[Piece]:
        """Whatever is held back, at the end of the reply."""
        out: list[Piece] = []
        rest, self._buffer = self._buffer, ""
        if self._state == _REASONING or (self._state == _BODY and self._channel == "analysis"):
            if rest.strip():
                out.append(ReasoningEvent(rest.rstrip()))
        elif self._state == _HEADER:
            if "<|channel|>" not in rest:  # a model that never opened a channel: its answer
                for marker in HARMONY_MARKERS:
                    rest = rest.replace(marker, "")
                if rest.strip():
                    out.append(TokenEvent(rest))
        elif self._state != _BETWEEN:
            for marker in self.format.strip:
                rest = rest.replace(marker, "")
            if self._trim_answer:
                rest = rest.lstrip()
            if rest:
                out.append(TokenEvent(rest))
        return out

    # -- tags: <think>…</think> at the start of a reply --------------------------------------

    def _feed_tags(self, out: list[Piece]) -> None:
        fmt = self.format
        while self._buffer:
            if self._state == _START:
                head = self._buffer.lstrip()
                if head.startswith(fmt.open):
                    self._buffer = head[len(fmt.open) :]
                    self._state = _REASONING
                    self.reasoned = self._trim_reasoning = True
                    continue
                if not head or fmt.open.startswith(head):
                    return  # only whitespace, or a marker still arriving
                self._state = _ANSWER
            if self._state == _REASONING:
                if self._trim_reasoning:
                    self._buffer = self._buffer.lstrip()
                at = self._buffer.find(fmt.close)
                if at >= 0:
                    text = self._buffer[:at].rstrip()
                    if text:
                        out.append(ReasoningEvent(text))
                    self._buffer = self._buffer[at + len(fmt.close) :]
                    self._state, self._trim_answer = _ANSWER, True
                    continue
                keep = _partial_suffix(self._buffer, (fmt.close,))
                text = self._buffer[: len(self._buffer) - keep]
                body = text.rstrip()  # trailing whitespace waits: it may end the block
                if body:
                    out.append(ReasoningEvent(body))
                    self._trim_reasoning = False
                self._buffer = text[len(body) :] + self._buffer[len(text) :]
                return
            self._answer(out)
            return

    def _answer(self, out: list[Piece]) -> None:
        if self._trim_answer:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return
            self._trim_answer = False
        dropped = (*self.format.strip, self.format.close)  # a stray close marker is not text
        for marker in dropped:
            self._buffer = self._buffer.replace(marker, "")
        keep = _partial_suffix(self._buffer, dropped)
        text = self._buffer[: len(self._buffer) - keep]
        self._buffer = self._buffer[len(text) :]
        if text:
            out.append(TokenEvent(text))

    # -- harmony: <|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final… ---

    def _feed_harmony(self, out: list[Piece]) -> None:
        while self._buffer:
            if self._state == _BETWEEN:
                at = self._buffer.find("<|start|>")
                if at < 0:
                    keep = _partial_suffix(self._buffer, ("<|start|>",))
                    self._buffer = self._buffer[len(self._buffer) - keep :] if keep else ""
                    return
                self._buffer = self._buffer[at + len("<|start|>") :]
                self._state = _HEADER
            if self._state == _HEADER:
                at = self._buffer.find("<|message|>")
                if at < 0:
                    if len(self._buffer) > _HEADER_LIMIT and "<|channel|>" not in self._buffer:
                        self._state, self._channel = _BODY, "final"  # no channels: plain answer
                        continue
                    return
                header = self._header + self._buffer[:at]
                self._channel = _channel_name(header)
                self._header = ""
                self._buffer = self._buffer[at + len("<|message|>") :]
                self._state = _BODY
                if self._channel == "analysis":
                    self.reasoned = True
                elif recipient := _RECIPIENT_RE.search(header):  # a call to a tool
                    out.append(TokenEvent(f"{HARMONY_CALL}{recipient.group(1)}\n"))
                continue
            # _BODY
            ends = [i for i in (self._buffer.find(m) for m in _BODY_ENDS) if i >= 0]
            at = min(ends) if ends else -1
            marker = ""
            if at >= 0:
                text, self._buffer = self._buffer[:at], self._buffer[at:]
                marker = next(m for m in _BODY_ENDS if self._buffer.startswith(m))
                self._buffer = self._buffer[len(marker) :]
            else:
                keep = _partial_suffix(self._buffer, _BODY_ENDS)
                text = self._buffer[: len(self._buffer) - keep]
                self._buffer = self._buffer[len(text) :]
            if text:
                if self._channel == "analysis":
                    out.append(ReasoningEvent(text))
                else:
                    out.append(TokenEvent(text))
            if at < 0:
                return
            self._state = _HEADER if marker == "<|start|>" else _BETWEEN


_BODY_ENDS = ("<|end|>", "<|return|>", "<|call|>", "<|start|>")
HARMONY_CALL = "\U000f0002functions."
"""Put before a harmony message addressed ``to=functions.NAME`` (then NAME and a newline): the
message is a call, which the tool-call parser reads (tool_call_syntax.HARMONY)."""
_RECIPIENT_RE = re.compile(r"to=functions\.([^\s<]+)")


def _channel_name(header: str) -> str:
    """``analysis`` from ``<|channel|>analysis`` (or ``assistant<|channel|>final to=…``)."""
    at = header.rfind("<|channel|>")
    if at < 0:
        return "final"
    words = header[at + len("<|channel|>") :].replace("<|constrain|>", " ").split()
    return words[0] if words else "final"

"""A real Backend that replays scripted replies: fast, deterministic, records every call.

Used by unit and UI tests (and ``chatapp --backend fake`` for demos). Token counting splits on
words and punctuation, so budgets behave like a real tokenizer's, only coarser. With
``CHATAPP_FAKE_RECORD=FILE`` every call's messages are also appended to FILE as a JSON line, so
what a front end sends can be compared across processes.

A reply can carry a reasoning block (``enqueue(answer, reasoning=...)``, or ``<think>…</think>``
at the start of the reply text): it streams as ``ReasoningEvent``s before the answer.
``FakeBackend(thinks=True)`` behaves like a model whose template has an ``enable_thinking``
switch, on by default: with ``GenerationParams(thinking="off")`` (or a grammar/JSON schema and
thinking left at "default") the reasoning is not streamed and the prompt ends with an empty
think block, as Qwen3's does.

A reply can also end in calls to tools (``enqueue(text, tool_calls=[ToolCall(...)])``): they
come as ``ToolCallEvent``s after the text, and the reply finishes with ``tool_calls``. With
``CHATAPP_FAKE_SCRIPT=FILE`` (one JSON object a line: ``{"text": ..., "tool_calls": [{"name":
..., "arguments": {...}}]}``) a ``chatapp --backend fake`` process plays those replies first.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from chatapp.domain import (
    CancelToken,
    ChatMessage,
    DoneEvent,
    GenerationParams,
    GenerationStats,
    ModelIdentity,
    ReasoningEvent,
    StreamEvent,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
)
from chatapp.engine.reasoning import NO_THINKING, THINK, ReasoningSplitter, ThinkingSupport

_TOKEN_RE = re.compile(r"\w+|[^\w\s]|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into fake 'tokens' that join back to the same text."""
    return _TOKEN_RE.findall(text)


@dataclass
class FakeCall:
    messages: list[ChatMessage]
    params: GenerationParams


@dataclass
class FakeReply:
    """One scripted reply: thinking tokens, then answer tokens."""

    answer: list[str]
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class FakeBackend:
    """Scripted backend. ``enqueue`` replies; with none queued it echoes the last user turn."""

    replies: deque[FakeReply] = field(default_factory=deque)
    token_delay_s: float = 0.0
    context_size: int = 4096
    name: str = "fake-model"
    calls: list[FakeCall] = field(default_factory=list)
    closed: bool = False
    record_to: str | None = field(default_factory=lambda: os.environ.get("CHATAPP_FAKE_RECORD"))
    thinks: bool = False
    """Behave like a thinking model with an ``enable_thinking`` switch (on by default)."""

    def __post_init__(self) -> None:
        script = os.environ.get("CHATAPP_FAKE_SCRIPT")
        if script and not self.replies:
            self.replies.extend(load_script(script))

    def enqueue(
        self,
        reply: str | Iterable[str],
        *,
        reasoning: str | None = None,
        tool_calls: Iterable[ToolCall] = (),
    ) -> None:
        """Queue one reply: a string (split into word tokens) or an explicit token list, with
        ``reasoning`` streamed before it. A string that starts with ``<think>…</think>`` is
        split the way a real thinking model's reply is."""
        answer = split_tokens(reply) if isinstance(reply, str) else list(reply)
        thought = split_tokens(reasoning) if reasoning else []
        if isinstance(reply, str) and reasoning is None and reply.lstrip().startswith(THINK.open):
            splitter = ReasoningSplitter(THINK)
            pieces = [*splitter.feed(reply), *splitter.flush()]
            thinking = "".join(p.text for p in pieces if isinstance(p, ReasoningEvent))
            thought = split_tokens(thinking)
            answer = split_tokens("".join(p.text for p in pieces if isinstance(p, TokenEvent)))
        self.replies.append(FakeReply(answer, thought, list(tool_calls)))

    @property
    def thinking(self) -> ThinkingSupport:
        if not self.thinks:
            return NO_THINKING
        return ThinkingSupport(format=THINK, switch="enable_thinking", default_on=True)

    def _thinks_now(self, params: GenerationParams | None) -> bool:
        """Whether a reply with these settings thinks (a thinking fake's template switch)."""
        if not self.thinks:
            return False
        if params is None:
            return True
        constrained = bool(params.grammar or params.json_schema)
        values = self.thinking.template_variables(
            params.thinking, params.reasoning_effort, constrained=constrained
        )
        return bool(values.get("enable_thinking", True))

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(name=self.name, backend="fake", n_ctx_train=self.context_size)

    @property
    def n_ctx(self) -> int:
        return self.context_size

    @property
    def last_call(self) -> FakeCall:
        return self.calls[-1]

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[StreamEvent]:
        self.calls.append(FakeCall(list(messages), params))
        if self.record_to:
            with open(self.record_to, "a", encoding="utf-8") as log:
                log.write(json.dumps([m.to_dict() for m in messages], ensure_ascii=False) + "\n")
        if self.replies:
            script = self.replies.popleft()
        else:
            last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
            script = FakeReply(split_tokens(f"You said: {last_user}"))
        reasoning = script.reasoning if self._thinks_now(params) or not self.thinks else []
        started = time.perf_counter()
        stats = GenerationStats(
            prompt_tokens=self.count_chat_tokens(messages, params), n_ctx=self.n_ctx
        )
        first_at: float | None = None
        answer_at: float | None = None
        produced = 0
        finish: str = "stop"
        text_so_far = ""
        steps = [(True, t) for t in reasoning] + [(False, t) for t in script.answer]
        for thinking, token in steps:
            if cancel is not None and cancel.cancelled:
                finish = "cancelled"
                break
            if produced >= params.max_tokens:
                finish = "length"
                break
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            if not thinking:
                text_so_far += token
                stop_hit = next((s for s in params.stop if s and s in text_so_far), None)
                if stop_hit:
                    break
            produced += 1
            now = time.perf_counter()
            if first_at is None:
                first_at = now
            if thinking:
                stats.reasoning_tokens += 1
                yield ReasoningEvent(token)
            else:
                if answer_at is None:
                    answer_at = now
                yield TokenEvent(token)
        else:
            if cancel is not None and cancel.cancelled:
                finish = "cancelled"
            elif script.tool_calls and params.tools:
                for call in script.tool_calls:
                    yield ToolCallEvent(call)
                finish = "tool_calls"
        ended = time.perf_counter()
        stats.completion_tokens = produced
        stats.ttft_s = (first_at or ended) - started
        stats.total_s = ended - started
        if stats.reasoning_tokens:
            stats.reasoning_s = (answer_at or ended) - (first_at or ended)
        decode_s = ended - (first_at or ended)
        stats.decode_tokens_per_s = (produced - 1) / decode_s if produced > 1 and decode_s else 0.0
        yield DoneEvent(stats=stats, finish_reason=finish)  # type: ignore[arg-type]

    def count_tokens(self, text: str) -> int:
        return sum(1 for t in split_tokens(text) if not t.isspace())

    def count_chat_tokens(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> int:
        return self.count_tokens(self.format_chat(messages, params))

    def format_chat(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> str:
        parts = [f"<|im_start|>{m.role}\n{_shown(m)}<|im_end|>\n" for m in messages]
        if params is not None and params.tools:
            tools = json.dumps([t.to_openai() for t in params.tools], ensure_ascii=False)
            parts.insert(0, f"<|im_start|>system\nTools: {tools}<|im_end|>\n")
        start = "<|im_start|>assistant\n"
        if self.thinks and not self._thinks_now(params):
            start += "<think>\n\n</think>\n\n"
        return "".join(parts) + start

    def close(self) -> None:
        self.closed = True


def _shown(message: ChatMessage) -> str:
    """A message's text as the fake template writes it (calls as JSON after the text)."""
    if not message.tool_calls:
        return message.content
    calls = json.dumps([c.to_dict() for c in message.tool_calls], ensure_ascii=False)
    return f"{message.content}<tool_call>{calls}</tool_call>"


def load_script(path: str) -> list[FakeReply]:
    """Replies from a ``CHATAPP_FAKE_SCRIPT`` file (see the module docstring)."""
    replies = []
    with open(path, encoding="utf-8") as script:
        for n, line in enumerate(script, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            calls = [
                ToolCall(id=f"call_{n}_{i}", name=c["name"], arguments=c.get("arguments", {}))
                for i, c in enumerate(item.get("tool_calls", []))
            ]
            replies.append(FakeReply(split_tokens(item.get("text", "")), [], calls))
    return replies

"""A real Backend that replays scripted replies: fast, deterministic, records every call.

Used by unit and UI tests (and ``chatapp --backend fake`` for demos). Token counting splits on
words and punctuation, so budgets behave like a real tokenizer's, only coarser. With
``CHATAPP_FAKE_RECORD=FILE`` every call's messages are also appended to FILE as a JSON line, so
what a front end sends can be compared across processes.
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
    StreamEvent,
    TokenEvent,
)

_TOKEN_RE = re.compile(r"\w+|[^\w\s]|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into fake 'tokens' that join back to the same text."""
    return _TOKEN_RE.findall(text)


@dataclass
class FakeCall:
    messages: list[ChatMessage]
    params: GenerationParams


@dataclass
class FakeBackend:
    """Scripted backend. ``enqueue`` replies; with none queued it echoes the last user turn."""

    replies: deque[list[str]] = field(default_factory=deque)
    token_delay_s: float = 0.0
    context_size: int = 4096
    name: str = "fake-model"
    calls: list[FakeCall] = field(default_factory=list)
    closed: bool = False
    record_to: str | None = field(default_factory=lambda: os.environ.get("CHATAPP_FAKE_RECORD"))

    def enqueue(self, reply: str | Iterable[str]) -> None:
        """Queue one reply: a string (split into word tokens) or an explicit token list."""
        tokens = split_tokens(reply) if isinstance(reply, str) else list(reply)
        self.replies.append(tokens)

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
            tokens = self.replies.popleft()
        else:
            last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
            tokens = split_tokens(f"You said: {last_user}")
        started = time.perf_counter()
        stats = GenerationStats(prompt_tokens=self.count_chat_tokens(messages), n_ctx=self.n_ctx)
        first_at: float | None = None
        produced = 0
        finish: str = "stop"
        text_so_far = ""
        for token in tokens:
            if cancel is not None and cancel.cancelled:
                finish = "cancelled"
                break
            if produced >= params.max_tokens:
                finish = "length"
                break
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            text_so_far += token
            stop_hit = next((s for s in params.stop if s and s in text_so_far), None)
            if stop_hit:
                break
            produced += 1
            if first_at is None:
                first_at = time.perf_counter()
            yield TokenEvent(token)
        else:
            if cancel is not None and cancel.cancelled:
                finish = "cancelled"
        ended = time.perf_counter()
        stats.completion_tokens = produced
        stats.ttft_s = (first_at or ended) - started
        stats.total_s = ended - started
        decode_s = ended - (first_at or ended)
        stats.decode_tokens_per_s = (produced - 1) / decode_s if produced > 1 and decode_s else 0.0
        yield DoneEvent(stats=stats, finish_reason=finish)  # type: ignore[arg-type]

    def count_tokens(self, text: str) -> int:
        return sum(1 for t in split_tokens(text) if not t.isspace())

    def count_chat_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.count_tokens(self.format_chat(messages))

    def format_chat(self, messages: Sequence[ChatMessage]) -> str:
        parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
        return "".join(parts) + "<|im_start|>assistant\n"

    def close(self) -> None:
        self.closed = True

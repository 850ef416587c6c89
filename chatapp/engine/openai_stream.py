"""Reading an OpenAI-compatible server's streamed reply without trusting the server.

A server can be anything at the other end of ``backend.base_url``: it may trickle one byte at a
time, send one endless line, send JSON of the wrong shape, or stream forever. Here the
server-sent events are read in bounded pieces: a line longer than ``MAX_LINE_BYTES`` ends the
reply, a reply gets ``timeout_s`` to send each next useful chunk (measured here, so a trickle of
bytes does not keep it alive) and ten times that in all, and every chunk is checked field by
field into a ``ReplyChunk`` before anything of it is used. What went wrong is a
``StreamProblem`` whose message names the server and the problem in one line.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chatapp.domain import GenerationStats

MAX_LINE_BYTES = 1024 * 1024
"""A single server-sent-event line; one token's chunk is a few hundred bytes."""
MAX_JSON_BODY_BYTES = 8 * 1024 * 1024
"""A whole non-streamed JSON answer (``/models``, ``/props``, ``/tokenize``)."""
TOTAL_DEADLINE_FACTOR = 10
"""A reply ends after ``timeout_s`` without a useful chunk, and after this many times it in all."""
MAX_DETAIL_CHARS = 300


class StreamProblem(Exception):
    """The stream cannot be used any further; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class ReplyChunk:
    """One checked chunk: the text and thinking it adds, how it ends the reply, and usage."""

    text: str = ""
    thought: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


def one_line(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (escaping is left to the printer)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def read_capped(chunks: Iterator[bytes], cap: int, what: str) -> bytes:
    """All of ``chunks`` joined; StreamProblem once they pass ``cap`` bytes."""
    data = bytearray()
    for piece in chunks:
        data += piece
        if len(data) > cap:
            raise StreamProblem(f"{what} is larger than {cap // (1024 * 1024)} MiB")
    return bytes(data)


class Deadlines:
    """The time a reply has left: until the next useful chunk, and in all."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        now = time.monotonic()
        self.total_end = now + timeout_s * TOTAL_DEADLINE_FACTOR
        self.idle_end = now + timeout_s

    def progressed(self) -> None:
        self.idle_end = time.monotonic() + self.timeout_s

    def problem(self) -> str | None:
        """Which deadline has passed, in words; None while both are ahead."""
        now = time.monotonic()
        if now > self.total_end:
            return (
                f"reply still not finished after {self.timeout_s * TOTAL_DEADLINE_FACTOR:g} s "
                "(10 x backend.timeout_s)"
            )
        if now > self.idle_end:
            return f"sent nothing usable for {self.timeout_s:g} s (backend.timeout_s)"
        return None

    def check(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise StreamProblem(problem)


class ConnectionSockets:
    """The sockets of the connections a client opens, kept from httpcore's ``trace`` request
    extension, so that a stalled request can be cut off from another thread."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                self._sockets.add(sock)

    def shut_down(self) -> None:
        """Every kept connection ends now: a read blocked on one of them returns at once."""
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class StallGuard:
    """Cuts a request's connections once its deadlines pass, even in the middle of a blocked
    read: httpx's timeout counts from the last byte, so a server trickling a byte at a time (its
    headers included) would hold the request open for ever. ``fired`` says why it cut."""

    POLL_S = 0.25

    def __init__(self, deadlines: Deadlines, sockets: ConnectionSockets) -> None:
        self.deadlines = deadlines
        self.sockets = sockets
        self.fired: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="chatapp-stall-guard", daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(self.POLL_S):
            problem = self.deadlines.problem()
            if problem is not None:
                self.fired = problem
                self.sockets.shut_down()
                return

    def __enter__(self) -> StallGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()


def sse_lines(chunks: Iterator[bytes], deadlines: Deadlines) -> Iterator[str]:
    """The lines of a server-sent-event stream, each at most ``MAX_LINE_BYTES``; the deadlines
    are checked whenever bytes arrive."""
    pending = bytearray()
    for piece in chunks:
        deadlines.check()
        pending += piece
        while True:
            end = pending.find(b"\n")
            if end < 0:
                break
            line = bytes(pending[:end]).rstrip(b"\r")
            del pending[: end + 1]
            if len(line) > MAX_LINE_BYTES:
                raise StreamProblem(f"sent a line longer than {MAX_LINE_BYTES // 1024} KiB")
            yield line.decode("utf-8", "replace")
        if len(pending) > MAX_LINE_BYTES:
            raise StreamProblem(f"sent a line longer than {MAX_LINE_BYTES // 1024} KiB")
    if pending.strip():
        yield bytes(pending).decode("utf-8", "replace")


def sse_payloads(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    """Each ``data:`` JSON object of the stream; None once for ``data: [DONE]`` (then stops).
    StreamProblem for data that is not a JSON object, ServerReportedError for an ``error``."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, ": ping" comments, "event:" names
        data = line[5:].strip()
        if data == "[DONE]":
            yield None
            return
        try:
            payload = json.loads(data)
        except ValueError:
            raise StreamProblem(f"sent data that is not JSON ({one_line(data, 60)!r})") from None
        if not isinstance(payload, dict):
            raise StreamProblem(f"sent a chunk that is not a JSON object ({one_line(data, 60)!r})")
        if payload.get("error"):
            message = payload["error"]
            message = message.get("message", message) if isinstance(message, dict) else message
            raise ServerReportedError(one_line(str(message)))
        yield payload


class ServerReportedError(Exception):
    """The server itself reported an error in the stream; ``str()`` is its message."""


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StreamProblem(f"sent a malformed chunk (usage.{name} is not a count)")
    return value


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StreamProblem(f"sent a malformed chunk ({name} is not text)")
    return value


def parse_chunk(payload: dict[str, Any]) -> ReplyChunk:
    """One chunk checked against the OpenAI streaming format; StreamProblem naming the field
    that is wrong. Only the first choice is read (chatapp asks for one)."""
    usage = None
    raw_usage = payload.get("usage")
    if raw_usage is not None:
        if not isinstance(raw_usage, dict):
            raise StreamProblem("sent a malformed chunk (usage is not an object)")
        details = raw_usage.get("completion_tokens_details")
        if details is not None and not isinstance(details, dict):
            raise StreamProblem(
                "sent a malformed chunk (usage.completion_tokens_details is not an object)"
            )
        usage = Usage(
            _count(raw_usage.get("prompt_tokens"), "prompt_tokens"),
            _count(raw_usage.get("completion_tokens"), "completion_tokens"),
            _count((details or {}).get("reasoning_tokens"), "reasoning_tokens"),
        )
    choices = payload.get("choices")
    if choices is None:
        choices = []
    if not isinstance(choices, list):
        raise StreamProblem("sent a malformed chunk (choices is not a list)")
    if not choices:
        return ReplyChunk(usage=usage)
    choice = choices[0]
    if not isinstance(choice, dict):
        raise StreamProblem("sent a malformed chunk (choices[0] is not an object)")
    delta = choice.get("delta")
    if delta is None:
        delta = {}
    if not isinstance(delta, dict):
        raise StreamProblem("sent a malformed chunk (choices[0].delta is not an object)")
    thought = _text(delta.get("reasoning_content"), "delta.reasoning_content") or _text(
        delta.get("reasoning"), "delta.reasoning"
    )
    text = _text(delta.get("content"), "delta.content")
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise StreamProblem("sent a malformed chunk (finish_reason is not text)")
    return ReplyChunk(text=text, thought=thought, finish_reason=finish, usage=usage)


class ReplyLimits:
    """chatapp's own token limit on a reply: a server that sends more text chunks than
    ``max_tokens``, or more text than that many tokens could hold, is cut off there."""

    MAX_CHARS_PER_TOKEN = 64  # the longest tokens (runs of spaces in code) are a few dozen

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.max_chars = max(max_tokens * self.MAX_CHARS_PER_TOKEN, 4096)
        self.chunks = 0
        self.chars = 0

    def admit(self, chunk: ReplyChunk) -> tuple[ReplyChunk, bool]:
        """(what of ``chunk`` fits, whether the reply may go on). A chunk past ``max_tokens``
        chunks adds nothing; one past the text limit adds what fits of it."""
        size = len(chunk.text) + len(chunk.thought)
        if not size:
            return chunk, True
        if self.chunks + 1 > self.max_tokens:
            return ReplyChunk(usage=chunk.usage), False
        room = self.max_chars - self.chars
        self.chunks += 1
        if size <= room:
            self.chars += size
            return chunk, True
        thought = chunk.thought[:room]
        text = chunk.text[: room - len(thought)]
        self.chars = self.max_chars
        return ReplyChunk(text=text, thought=thought, usage=chunk.usage), False


class ReplyClock:
    """When a reply's pieces arrived, turned into its stats at the end."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_at: float | None = None
        self.answer_at: float | None = None
        self.last_thought_at: float | None = None
        self.reasoning_chunks = 0
        self._now = self.started

    def arrived(self) -> None:
        """A chunk with text or thinking arrived."""
        self._now = time.perf_counter()
        if self.first_at is None:
            self.first_at = self._now

    def thought(self) -> None:
        self.reasoning_chunks += 1
        self.last_thought_at = self._now

    def answered(self) -> None:
        if self.answer_at is None:
            self.answer_at = self._now

    def stats(
        self, n_ctx: int, usage: Usage | None, chunks: int, estimate_prompt: Callable[[], int]
    ) -> GenerationStats:
        """The server's usage where it sent one; else chunks counted here and the prompt
        estimated by ``estimate_prompt``."""
        ended = time.perf_counter()
        first = self.first_at or ended
        stats = GenerationStats(n_ctx=n_ctx)
        completion = (
            usage.completion_tokens if usage and usage.completion_tokens is not None else chunks
        )
        reasoning = usage.reasoning_tokens if usage else None
        if self.reasoning_chunks or reasoning:
            stats.reasoning_tokens = reasoning or self.reasoning_chunks
            thought_until = self.answer_at or self.last_thought_at or ended
            stats.reasoning_s = max(0.0, thought_until - first)
        prompt = usage.prompt_tokens if usage else None
        stats.prompt_tokens = prompt if prompt is not None else estimate_prompt()
        stats.completion_tokens = completion
        stats.ttft_s = first - self.started
        stats.total_s = ended - self.started
        decode_s = ended - first
        stats.decode_tokens_per_s = (
            (completion - 1) / decode_s if completion > 1 and decode_s else 0
        )
        return stats

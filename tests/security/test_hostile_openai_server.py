"""An OpenAI-compatible server is whatever answers at ``backend.base_url``, so chatapp trusts
nothing it sends. A real HTTP server on loopback (tests/support/hostile_server.py) trickles
bytes, sends one endless line, malformed chunks, garbage, an endless stream and escape
sequences; a real ``chatapp ask`` must end each with one line (or, for the endless stream, at
its own token limit), store a failed reply as failed, and print no raw escape sequence."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import chatapp_env, run_chatapp, run_on_terminal, stored_state
from tests.support.hostile_server import HostileServer, Reply, chunk, raw, sse_head

pytestmark = pytest.mark.slow

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
CLEAR = "\x1b[2J"


def server_env(home: Path, server: HostileServer, **extra: str) -> dict[str, str]:
    env = chatapp_env(home)
    env.update(
        CHATAPP_BACKEND__KIND="openai",
        CHATAPP_BACKEND__BASE_URL=server.base_url,
        CHATAPP_BACKEND__TIMEOUT_S="3",
        **extra,
    )
    return env


def ask(home: Path, reply: Reply, *args: str) -> tuple[Any, float, HostileServer]:
    """``chatapp ask ARGS hi`` against a server answering with ``reply``; (run, seconds, server)."""
    with HostileServer(reply) as server:
        started = time.monotonic()
        run = run_chatapp(home, "ask", *args, "hi", env=server_env(home, server), timeout=90)
        return run, time.monotonic() - started, server


def stored_reply(home: Path) -> tuple[str, str]:
    """(content, status) of the newest stored reply."""
    rows, _ = stored_state(home)
    replies = [row for row in rows if isinstance(row, tuple) and len(row) == 4]
    _, role, content, status = replies[-1]
    assert role == "assistant"
    return content, status


def trickle(handler: BaseHTTPRequestHandler) -> None:
    sse_head(handler)
    for byte in chunk({"content": "slow"}):
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(2)


def header_trickle(handler: BaseHTTPRequestHandler) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Slow: " + b"s" * 100:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(2)


def endless_line(handler: BaseHTTPRequestHandler) -> None:
    sse_head(handler)
    handler.wfile.write(b"data: ")
    block = b"A" * 65536
    for _ in range(16 * 1024):  # a gigabyte, if nobody stops reading
        handler.wfile.write(block)


def test_a_trickle_of_bytes_times_out(chatapp_home: Path) -> None:
    run, seconds, _ = ask(chatapp_home, trickle)
    run.assert_refused(3, "sent nothing usable for 3 s")
    assert seconds < 20, f"took {seconds:.0f} s with backend.timeout_s=3"
    assert stored_reply(chatapp_home) == ("", "error")


def test_a_trickle_of_header_bytes_times_out(chatapp_home: Path) -> None:
    """httpx's own timeout counts from the last byte; chatapp's counts from the request."""
    run, seconds, _ = ask(chatapp_home, header_trickle)
    run.assert_refused(3, "sent nothing usable for 3 s")
    assert seconds < 20, f"took {seconds:.0f} s with backend.timeout_s=3"
    assert stored_reply(chatapp_home) == ("", "error")


def test_one_endless_line_is_cut_off(chatapp_home: Path) -> None:
    run, seconds, _ = ask(chatapp_home, endless_line)
    run.assert_refused(3, "a line longer than 1024 KiB")
    assert seconds < 30
    assert stored_reply(chatapp_home)[1] == "error"


def _stream(*lines: bytes, done: bool = True) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        sse_head(handler)
        for line in lines:
            handler.wfile.write(line)
        if done:
            handler.wfile.write(b"data: [DONE]\n\n")

    return reply


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (raw({"choices": [1]}), "choices[0] is not an object"),
        (raw({"choices": [{"delta": "a string"}]}), "choices[0].delta is not an object"),
        (raw({"choices": [{"delta": {"content": 42}}]}), "delta.content is not text"),
        (raw({"choices": [], "usage": {"completion_tokens": "many"}}), "usage.completion_tokens"),
        (raw({"choices": [], "usage": "lots"}), "usage is not an object"),
        (raw([1, 2, 3]), "not a JSON object"),
        (b"data: {not json\n\n", "not JSON"),
    ],
)
def test_a_malformed_chunk_ends_the_reply_as_failed(
    chatapp_home: Path, bad: bytes, named: str
) -> None:
    run, _, _ = ask(chatapp_home, _stream(chunk({"content": "Hello"}), bad))
    run.assert_refused(3, named)
    assert stored_reply(chatapp_home) == ("Hello", "error"), "kept, and marked as failed"


@pytest.mark.parametrize(
    "lines",
    [
        (b"garbage\n", b"more garbage\n\n", b"event: nothing\n\n"),  # no data line at all
        (b"\x00\xff\xfe binary\n",),
    ],
)
def test_a_stream_of_garbage_is_a_failed_reply(chatapp_home: Path, lines: tuple[bytes]) -> None:
    run, _, _ = ask(chatapp_home, _stream(*lines, done=False))
    run.assert_refused(3, "ended without its end marker")
    assert stored_reply(chatapp_home) == ("", "error"), "not an empty reply stored as complete"


def endless_stream(handler: BaseHTTPRequestHandler) -> None:
    sse_head(handler)
    word = chunk({"content": "word "})
    for _ in range(10_000_000):
        handler.wfile.write(word)


def test_an_endless_stream_stops_at_the_token_limit(chatapp_home: Path) -> None:
    run, seconds, server = ask(chatapp_home, endless_stream, "--max-tokens", "20")
    assert run.code == 0, run.err
    assert server.requests[0]["max_tokens"] == 20
    assert stored_reply(chatapp_home) == ("word " * 20, "complete")
    assert run.out.strip() == ("word " * 20).strip()
    assert seconds < 30


def test_a_server_sending_huge_chunks_is_cut_at_the_reply_size(chatapp_home: Path) -> None:
    """Twenty chunks of 512 KiB each are within 20 chunks but not within 20 tokens' text."""
    big = chunk({"content": "B" * (512 * 1024)})
    run, _, _ = ask(chatapp_home, _stream(*([big] * 20)), "--max-tokens", "20")
    assert run.code == 0, run.err
    content, status = stored_reply(chatapp_home)
    assert status == "complete" and 0 < len(content) <= 20 * 256, "not 10 MB for 20 tokens"


def error_500(handler: BaseHTTPRequestHandler) -> None:
    body = f"Internal error {OSC52} {CLEAR} try later".encode()
    handler.send_response(500)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def error_mid_reply(handler: BaseHTTPRequestHandler) -> None:
    sse_head(handler)
    handler.wfile.write(chunk({"content": "Partial"}))
    handler.wfile.write(raw({"error": {"message": f"overloaded {OSC52} {CLEAR} sorry"}}))


@pytest.mark.parametrize("reply", [error_500, error_mid_reply], ids=["http-500", "mid-reply"])
def test_escape_sequences_in_a_server_error_are_shown_escaped(
    chatapp_home: Path, reply: Reply
) -> None:
    with HostileServer(reply) as server:
        code, out = run_on_terminal(chatapp_home, "ask", "hi", env=server_env(chatapp_home, server))
    assert code == 3, out
    assert b"\x1b]52" not in out and b"\x1b[2J" not in out, out
    assert b"\\x1b]52;c;cm0gLXJmIH4=\\x07" in out and b"\\x1b[2J" in out, out
    assert out.count(b"error: ") == 1, out

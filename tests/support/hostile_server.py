"""An OpenAI-compatible server on loopback that misbehaves on purpose, for the security suite.

``GET /v1/models`` lists one model (``owned_by: someone``, so the backend asks nothing else);
``POST /v1/chat/completions`` hands the raw socket to ``reply(handler)``, which writes whatever
bytes the test wants: a trickle, an endless line, malformed chunks, an HTTP 500 with escape
sequences in its body. Each request's JSON body is kept in ``requests``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[BaseHTTPRequestHandler], None]


def sse_head(handler: BaseHTTPRequestHandler, status: int = 200) -> None:
    """The status line and headers of an event stream (no length: the body runs until close)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Connection", "close")
    handler.end_headers()


def chunk(delta: Any, **extra: Any) -> bytes:
    """One ``data:`` line of a chat completion chunk with ``delta`` as its first choice's."""
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def raw(payload: Any) -> bytes:
    """One ``data:`` line holding ``payload`` as JSON, whatever its shape."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class HostileServer:
    """``with HostileServer(reply) as server: ... server.base_url ...``"""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    self.send_error(404)
                    return
                body = json.dumps(
                    {"object": "list", "data": [{"id": "hostile", "owned_by": "someone"}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                server.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                self.close_connection = True
                # The client hanging up is what it should do on a hostile stream.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server.reply(self)

        return Handler

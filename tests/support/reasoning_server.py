"""A local OpenAI-compatible server whose replies carry thinking the way real servers send it,
for the OpenAI backend's reasoning tests (llama-cpp-python's own server has no reasoning field).

It answers ``GET /v1/models`` (as llama.cpp's ``llama-server`` does: ``owned_by: llamacpp``),
``GET /props`` (with the chat template it is given) and ``POST /v1/chat/completions`` with
``stream: true``: server-sent events of ``delta`` chunks, each chunk exactly as scripted (e.g.
``{"reasoning_content": "…"}`` then ``{"content": "…"}``), then a usage chunk and
``data: [DONE]``. Every chat request body is kept in ``requests``; other routes are 404.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ReasoningServer:
    """``with ReasoningServer(template) as server: server.script([...]); ...``"""

    def __init__(self, chat_template: str = "", model: str = "thinker") -> None:
        self.chat_template = chat_template
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._scripts: deque[tuple[list[dict[str, Any]], dict[str, Any] | None]] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def script(self, deltas: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> None:
        """Queue the delta chunks of the next reply (and the usage it reports, if any)."""
        self._scripts.append((deltas, usage))

    def __enter__(self) -> ReasoningServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._json({"data": [{"id": server.model, "owned_by": "llamacpp"}]})
                elif self.path == "/props":
                    self._json({"chat_template": server.chat_template, "n_ctx": 4096})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                server.requests.append(request)
                deltas, usage = server._scripts.popleft() if server._scripts else ([], None)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for delta in deltas:
                    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                if usage is not None:
                    final["usage"] = usage
                self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())

        return Handler

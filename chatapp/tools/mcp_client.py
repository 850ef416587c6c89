"""One MCP server as a ``ToolProvider``, through the official ``mcp`` SDK (v2, imported lazily).

The SDK is async; chatapp's turn is not. Each server gets one event-loop thread of its own: a
task there enters the SDK's ``Client`` (spawning the stdio process or opening the HTTP session),
lists the tools and then holds the session open until ``close``. ``specs`` and ``call`` hand
work to that loop and wait for it with a deadline (``tools.start_timeout_s`` for start and
listing, ``tools.call_timeout_s`` per call), so a server that cannot start, dies, hangs or
answers garbage is one ``McpServerError`` line naming it, and never a hang. A server that died
after it ran is started again on its next use; one that could not start is not retried in this
process (its error is repeated at once). The stdio server's stderr goes to a log file in the
cache folder, whose last line the errors quote.

Stdio servers get an allow-listed environment (``server_environment``): the locale, the paths
a program needs to run, and what their ``mcp.json`` entry names; never chatapp's API keys,
``HF_TOKEN`` or anything else of ours."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import re
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chatapp import paths
from chatapp.domain import CancelToken, ToolSpec
from chatapp.errors import ChatappError
from chatapp.tools.mcp_answers import describe_failure, is_tool_error, result_output
from chatapp.tools.mcp_config import McpServerEntry
from chatapp.tools.registry import ToolOutput

PASSED_ENV = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
     "TMP", "TEMP", "XDG_RUNTIME_DIR", "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC",
     "PATHEXT", "APPDATA", "LOCALAPPDATA", "USERPROFILE", "HOMEDRIVE", "HOMEPATH", "USERNAME",
     "PROGRAMDATA", "PROGRAMFILES"}
)  # fmt: skip
"""Variables of ours a stdio server sees (and every ``LC_*``); nothing else."""
MAX_TOOLS = 256
MAX_DESCRIPTION_CHARS = 2000
MAX_SSE_EVENT_BYTES = 16 << 20
"""One HTTP answer may be this big; results are cut to ``max_result_chars`` after it."""
STOP_WAIT_S = 8.0
"""How long ``close`` waits for a stdio server to go (the SDK: stdin closed, 2 s, SIGTERM, 2 s,
SIGKILL)."""
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class McpServerError(ChatappError):
    """An MCP server that could not start, died, hung or answered garbage."""

    exit_code = 3

    def __init__(self, server: str, problem: str) -> None:
        super().__init__(f"MCP server {server!r}: {problem}")
        self.server = server


def server_environment(
    own: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What a stdio server is started with: the allow-listed part of ``own`` (``os.environ``)
    and the entry's own ``env`` over it."""
    source = os.environ if own is None else own
    env = {
        k: v
        for k, v in source.items()
        if (k in PASSED_ENV or k.startswith("LC_")) and not v.startswith("()")
    }
    env.update(extra or {})
    return env


class McpServerTools:
    """The tools of one ``mcp.json`` server, named ``SERVER.TOOL``."""

    def __init__(
        self,
        entry: McpServerEntry,
        *,
        start_timeout_s: float = 20.0,
        call_timeout_s: float = 60.0,
        max_result_chars: int = 64_000,
    ) -> None:
        self.entry = entry
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self.max_result_chars = max_result_chars
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._owner: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._client: Any = None
        self._specs: list[ToolSpec] | None = None
        self._failed: McpServerError | None = None
        self._closed = False
        self._draining: list[threading.Thread] = []
        """Loop threads still ending a server in the background; ``close`` waits for them."""

    @property
    def server(self) -> str:
        return self.entry.name

    @property
    def log_path(self) -> Path:
        """The stdio server's stderr (rewritten at each start)."""
        return paths.cache_dir() / "mcp" / f"{self.entry.name}.log"

    # -- the sync face -------------------------------------------------------------------

    def specs(self) -> list[ToolSpec]:
        """The server's tools, starting it first if needed (bounded by start_timeout_s)."""
        self._ensure_running()
        assert self._specs is not None
        return list(self._specs)

    def call(self, tool: str, arguments: dict[str, Any], cancel: CancelToken | None) -> ToolOutput:
        """Run ``tool`` on the server; a tool's own error comes back as an error result, a
        server that is gone, hangs past call_timeout_s or answers garbage is McpServerError."""
        self._ensure_running()
        loop, client = self._loop, self._client
        if loop is None or client is None:
            raise McpServerError(self.server, "is not running")
        future = asyncio.run_coroutine_threadsafe(
            client.call_tool(tool, arguments, read_timeout_seconds=self.call_timeout_s), loop
        )
        deadline = time.monotonic() + self.call_timeout_s
        while True:
            try:
                result = future.result(timeout=0.05)
                break
            except concurrent.futures.TimeoutError:
                if cancel is not None and cancel.cancelled:
                    future.cancel()
                    raise McpServerError(self.server, f"{tool} was stopped") from None
                if time.monotonic() > deadline:
                    future.cancel()
                    raise McpServerError(
                        self.server, f"{tool} gave no answer within {self.call_timeout_s:g} s"
                    ) from None
            except BaseException as exc:  # the SDK's errors, a dead process, bad JSON
                problem = describe_failure(exc)
                if problem == "no answer in time":
                    problem = f"no answer within {self.call_timeout_s:g} s"
                if not is_tool_error(exc):
                    self._restart_later()
                raise McpServerError(self.server, f"{tool}: {problem}") from None
        return result_output(result, self.max_result_chars)

    def close(self) -> None:
        """Stop the server (a stdio process is ended) and the loop thread; bounded."""
        with self._lock:
            self._closed = True
            self._shutdown(wait_s=STOP_WAIT_S)
            deadline = time.monotonic() + STOP_WAIT_S
            for thread in self._draining:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            self._draining.clear()
            _open_providers.discard(self)

    # -- start and stop ------------------------------------------------------------------

    def _ensure_running(self) -> None:
        with self._lock:
            if self._closed:
                raise McpServerError(self.server, "was stopped (chatapp is closing)")
            if self._failed is not None:
                raise self._failed
            if self._specs is not None and self._owner is not None and not self._owner.done():
                return
            self._shutdown(wait_s=STOP_WAIT_S)
            try:
                self._start()
            except McpServerError as exc:
                self._failed = exc
                self._shutdown(wait_s=0)  # the process is ended in the background
                raise

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_run_loop, args=(loop,), name=f"mcp {self.server}")
        thread.daemon = True
        thread.start()
        self._loop, self._thread = loop, thread
        ready: concurrent.futures.Future[list[ToolSpec]] = concurrent.futures.Future()
        self._owner = asyncio.run_coroutine_threadsafe(self._hold(ready), loop)
        _open_providers.add(self)
        try:
            self._specs = ready.result(timeout=self.start_timeout_s)
        except concurrent.futures.TimeoutError:
            raise McpServerError(
                self.server,
                f"did not start and list its tools within {self.start_timeout_s:g} s"
                f"{self._stderr_hint()}",
            ) from None
        except McpServerError:
            raise
        except BaseException as exc:
            raise McpServerError(
                self.server, f"could not start: {describe_failure(exc)}{self._stderr_hint()}"
            ) from None

    async def _hold(self, ready: concurrent.futures.Future[list[ToolSpec]]) -> None:
        """The one task that owns the session: open it, list the tools, wait for the stop."""
        self._stop = asyncio.Event()
        try:
            async with self._open_client() as client:
                specs = await self._list_tools(client)
                self._client = client
                if not ready.done():
                    ready.set_result(specs)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._client = None
            asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)

    def _open_client(self) -> Any:
        _quiet_sdk_logging()
        from mcp import Client

        if self.entry.transport == "stdio":
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=self.entry.command,
                args=list(self.entry.args),
                env=server_environment(extra=self.entry.env),
                cwd=self.entry.cwd,
                encoding_error_handler="replace",
            )
            log = _open_log(self.log_path)
            transport = _closing(stdio_client(params, errlog=log), log)
        else:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http = create_mcp_http_client(headers=dict(self.entry.headers))
            transport = _closing_async(
                streamable_http_client(
                    self.entry.url, http_client=http, max_sse_event_size=MAX_SSE_EVENT_BYTES
                ),
                http,
            )
        return Client(transport, read_timeout_seconds=self.start_timeout_s, cache=None)

    async def _list_tools(self, client: Any) -> list[ToolSpec]:
        specs: list[ToolSpec] = []
        cursor = None
        for _page in range(32):
            listing = await client.list_tools(cursor=cursor)
            specs.extend(s for t in listing.tools if (s := self._spec(t)) is not None)
            cursor = listing.next_cursor
            if not cursor or len(specs) >= MAX_TOOLS:
                break
        return specs[:MAX_TOOLS]

    def _spec(self, tool: Any) -> ToolSpec | None:
        name = getattr(tool, "name", "")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            return None  # a name no model could write back; not offered
        schema = getattr(tool, "input_schema", None)
        if not isinstance(schema, dict) or schema.get("type") != "object":
            schema = {"type": "object", "properties": {}}
        annotations = getattr(tool, "annotations", None)
        description = tool.description or getattr(tool, "title", None) or ""
        return ToolSpec(
            name=f"{self.server}.{name}",
            description=str(description)[:MAX_DESCRIPTION_CHARS],
            parameters=schema,
            server=self.server,
            read_only=bool(getattr(annotations, "read_only_hint", False)),
        )

    def _restart_later(self) -> None:
        """After a transport failure: drop the session so the next use starts it again."""
        with self._lock:
            self._specs = None
            self._shutdown(wait_s=0)

    def _shutdown(self, wait_s: float) -> None:
        """End the session task, which then stops its loop thread; wait up to ``wait_s`` for
        that (a stdio server is ended by the SDK: stdin closed, then SIGTERM, then SIGKILL).
        The caller holds the lock."""
        loop, owner, thread = self._loop, self._owner, self._thread
        ready = self._client is not None
        self._loop = self._owner = self._thread = None
        self._client = None
        if loop is None or owner is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already stopped
            if ready and self._stop is not None:
                loop.call_soon_threadsafe(self._stop.set)
            else:
                owner.cancel()  # still starting: cancel the start
        if thread is None:
            return
        if wait_s > 0:
            thread.join(timeout=wait_s)
            if thread.is_alive():
                owner.cancel()
                thread.join(timeout=1.0)
        self._draining = [t for t in (*self._draining, thread) if t.is_alive()]

    def _stderr_hint(self) -> str:
        if self.entry.transport != "stdio":
            return ""
        last = _last_line(self.log_path)
        return f"; it said: {last}" if last else ""


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """A server's loop thread: runs until its session task ends, then closes the loop."""
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _quiet_sdk_logging() -> None:
    """The SDK logs tracebacks (a line that is not JSON-RPC, a lost pipe); with no handler of
    ours, Python would print them on stderr over the chat. They go to chatapp's log handlers
    if it has any, and nowhere else; the user sees our one line."""
    import logging

    sdk = logging.getLogger("mcp")
    if not any(isinstance(h, logging.NullHandler) for h in sdk.handlers):
        sdk.addHandler(logging.NullHandler())


def _open_log(path: Path) -> Any:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", errors="replace")


def _last_line(path: Path, limit: int = 4096) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


@contextlib.asynccontextmanager
async def _closing(transport: Any, log: Any) -> Any:
    try:
        async with transport as streams:
            yield streams
    finally:
        log.close()


@contextlib.asynccontextmanager
async def _closing_async(transport: Any, http: Any) -> Any:
    async with http, transport as streams:
        yield streams


_open_providers: weakref.WeakSet[McpServerTools] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Servers stop with chatapp even when nobody called ``close``."""
    for provider in list(_open_providers):
        with contextlib.suppress(Exception):
            provider.close()

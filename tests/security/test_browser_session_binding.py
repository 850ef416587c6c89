"""What a cookie cannot do: browsers send cookies to every port of 127.0.0.1, so any other local
web server the user visits receives chatapp's cookie. Such a server replays it from a plain
client (aiohttp, with a forged Origin): no chat opens, because a chat needs the token in the
websocket's path, which lives only in the tab. In headless Chromium the whole attack runs for
real: the user's tab chats, the user visits a page on another local port, that server captures
every header the browser sent and tries them all against chatapp. And a tab cannot ask for a
terminal of 100000 x 100000 cells (that grew a tab's chatapp to 4.9 GB)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import aiohttp
import pytest

from chatapp.ui.browser import MAX_COLUMNS, MAX_ROWS
from tests.security.test_browser_foreign_page import CHROMIUM, CHROMIUM_ARGS, wait_for
from tests.support.served_chat import Served, free_port, serve_chat

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve_chat(tmp_path / "home", env={"CHATAPP_BACKEND__KIND": "fake"}) as chat:
        yield chat


async def _open_chat(url: str, headers: dict[str, str]) -> int:
    """101 when a chat opened, else the refusal's status."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await asyncio.wait_for(ws.receive(), 60)
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def _page(served: Served, cookie: str) -> tuple[int, str]:
    headers = {"Cookie": cookie, "Host": f"127.0.0.1:{served.port}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{served.port}/", headers=headers) as response,
    ):
        return response.status, await response.text()


def replay(served: Served, cookie_header: str) -> list[int]:
    """Everything a server that received ``cookie_header`` could try: the cookie on the bare
    websocket, each cookie value as the path key, the page itself, all with a forged Origin."""
    values = [part.partition("=")[2] for part in cookie_header.split("; ") if "=" in part]
    base = f"ws://127.0.0.1:{served.port}/ws"
    urls = [f"{base}?width=80&height=24"] + [f"{base}/{v}?width=80&height=24" for v in values]
    headers = {"Cookie": cookie_header, "Origin": served.origin}
    statuses = [asyncio.run(_open_chat(url, headers)) for url in urls]
    status, page = asyncio.run(_page(served, cookie_header))
    assert served.token not in page, "the page a cookie opens holds no token"
    return statuses


def link_cookie(served: Served) -> str:
    """The cookie the printed link sets in a browser (name=value)."""

    async def follow() -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(served.link, allow_redirects=False) as response,
        ):
            return response.headers["Set-Cookie"].split(";")[0]

    return asyncio.run(follow())


def test_the_cookie_replayed_by_another_local_server_opens_no_chat(served: Served) -> None:
    cookie = link_cookie(served)
    statuses = replay(served, cookie)
    assert statuses and all(status == 403 for status in statuses), statuses
    assert served.children() == [], "a chatapp process was started for a replayed cookie"


def _tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and every process below it."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields.get("PPid", "0").strip())
        rss[int(entry.name)] = int((fields.get("VmRSS", "0 kB").split() or ["0"])[0]) * 1024
    tree, grew = {pid}, True
    while grew:
        below = {p for p, parent in parents.items() if parent in tree} - tree
        grew = bool(below)
        tree |= below
    return sum(rss.get(p, 0) for p in tree)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if b"=" in item)


def test_a_huge_terminal_size_is_clamped(served: Served) -> None:
    """``/ws?width=100000&height=100000`` and a resize to the same: the tab's chatapp gets at most
    MAX_COLUMNS x MAX_ROWS and stays small."""

    async def huge_tab() -> tuple[dict[str, str], int]:
        url = served.ws_url.replace("width=80&height=24", "width=100000&height=100000")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, headers={"Origin": served.origin}) as ws,
        ):
            await asyncio.wait_for(ws.receive(), 60)
            [child] = served.children()
            environ = _environ(child)
            await ws.send_json(["resize", {"width": 100000, "height": 100000}])
            await ws.send_json(["resize", {"width": "x", "height": None}])  # nonsense: ignored
            await ws.send_str("not json")
            deadline = time.monotonic() + 8
            peak = 0
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.receive(), 0.5)
                peak = max(peak, _tree_rss_bytes(child))
            return environ, peak

    environ, peak = asyncio.run(huge_tab())
    assert int(environ["COLUMNS"]) <= MAX_COLUMNS and int(environ["ROWS"]) <= MAX_ROWS, environ
    assert peak < 1_000_000_000, f"the tab's chatapp grew to {peak / 1e9:.1f} GB"


class _CapturingHandler(http.server.BaseHTTPRequestHandler):
    """The other local server: serves a page and keeps every Cookie header it is sent."""

    captured: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        if self.headers.get("Cookie"):
            type(self).captured.append(self.headers["Cookie"])
        body = b"<!doctype html><title>dev server</title><p>hello"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.e2e
@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (make system-deps)")
def test_a_local_server_the_user_visits_cannot_reuse_what_the_browser_sent(served: Served) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    _CapturingHandler.captured = []
    port = free_port()
    other = http.server.ThreadingHTTPServer(("127.0.0.1", port), _CapturingHandler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context()
                mine = context.new_page()
                mine.goto(served.link)
                assert wait_for(lambda: len(served.children()) == 1, 60), "the user's tab chats"
                address = mine.evaluate("window.location.href")
                before = set(served.children())
                mine.reload()  # the tab keeps its chat key across a reload
                assert wait_for(lambda: set(served.children()) - before, 60), "chats again"
                context.new_page().goto(f"http://127.0.0.1:{port}/")
            finally:
                browser.close()
    finally:
        other.shutdown()
        other.server_close()
    assert served.token not in address, "the token left the address bar"
    captured = _CapturingHandler.captured
    assert captured, "the browser sent chatapp's cookie to the other port (as browsers do)"
    assert all(served.token not in header for header in captured), captured
    deadline = time.monotonic() + 30
    while served.children() and time.monotonic() < deadline:
        time.sleep(0.2)  # the user's tab closed with the browser
    for header in captured:
        statuses = replay(served, header)
        assert all(status == 403 for status in statuses), (header, statuses)
    assert served.children() == [], "no chatapp process started for the replayed headers"

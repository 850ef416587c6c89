"""The attack the browser mode invited: a web page open in the same browser as chatapp opens a
websocket to it. In headless Debian Chromium the user opens chatapp's link (their tab gets a
chat), then pages from two other origins try; one of them is on 127.0.0.1 too, so the browser
even sends chatapp's cookie with it (cookies ignore ports). Both are refused and no chatapp
process starts for them."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.support.served_chat import Served, free_port, serve_chat

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
EVIL_PAGE = """<!doctype html><title>waiting</title><script>
const ws = new WebSocket("ws://127.0.0.1:{port}/ws?width=80&height=24");
ws.onopen = () => {{ document.title = "OPENED"; ws.send(JSON.stringify(["stdin", "hi"])); }};
ws.onclose = () => {{ if (document.title !== "OPENED") document.title = "REFUSED"; }};
</script>"""


@pytest.fixture
def evil_site(tmp_path: Path) -> Iterator[int]:
    """A real HTTP server on another port: the attacker's page."""
    root = tmp_path / "evil"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


def wait_for(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return bool(condition())


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (make system-deps)")
def test_a_foreign_page_in_the_same_browser_gets_no_chat(tmp_path: Path, evil_site: int) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    served: Served
    with serve_chat(tmp_path / "home", env={"CHATAPP_BACKEND__KIND": "fake"}) as served:
        (tmp_path / "evil" / "index.html").write_text(EVIL_PAGE.format(port=served.port))
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context()
                mine = context.new_page()
                mine.goto(served.link)
                assert wait_for(lambda: len(served.children()) == 1, 60), "the user's tab chats"
                titles = {}
                for host in ("127.0.0.1", "localhost"):
                    page = context.new_page()
                    page.goto(f"http://{host}:{evil_site}/index.html")
                    page.wait_for_function("document.title !== 'waiting'", timeout=30_000)
                    titles[host] = page.title()
                cookies = {c["name"] for c in context.cookies(f"http://127.0.0.1:{evil_site}/")}
                children = len(served.children())
            finally:
                browser.close()
    assert titles == {"127.0.0.1": "REFUSED", "localhost": "REFUSED"}
    assert f"chatapp_page_{served.port}" in cookies, "the same-site page did carry the cookie"
    assert children == 1, "only the user's tab runs a chatapp; none started for the pages"

"""``chatapp serve`` in headless Debian Chromium (Playwright): the page, opened through the
printed access link, shows the chat, a typed prompt gets a reply from the bundled model, and the
reply is what the browser was sent; the page made no request beyond the server, and the same
page without the link's token gets no chat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.served_chat import Served, free_port, serve_chat, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
PROMPT = "Say hello to the browser."


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve_chat(tmp_path / "home", env={"CHATAPP_GENERATION__MAX_TOKENS": "32"}) as chat:
        yield chat
        chat.process.terminate()
        _, err = chat.process.communicate(timeout=30)
    assert "warning" not in err, "loopback serving needs no warning"


def terminal_output(frames: list[str | bytes]) -> str:
    """What the server wrote to the browser's terminal (textual-serve's ["stdout", text])."""
    out = []
    for frame in frames:
        if isinstance(frame, bytes):
            out.append(frame.decode("utf-8", "replace"))
            continue
        try:
            message = json.loads(frame)
        except ValueError:
            continue
        if isinstance(message, list) and message and message[0] == "stdout":
            out.append(str(message[1]))
    return "".join(out)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (make system-deps)")
def test_browser_chat_with_the_bundled_model(served: Served, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    home = served.home
    frames: list[str | bytes] = []
    requested: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.on(
                "websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame))
            )
            page.on("request", lambda request: requested.append(request.url))
            page.goto(served.link)
            deadline = time.monotonic() + 120
            while "ready ·" not in terminal_output(frames) and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            assert "ready ·" in terminal_output(frames), "the model did not load in the browser tab"
            page.click(".textual-terminal")
            page.keyboard.type(PROMPT)
            page.keyboard.press("Enter")
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                shown = terminal_output(frames)
                if "reply complete" in shown or "token limit" in shown:
                    break
                page.wait_for_timeout(200)
            page.screenshot(path=str(tmp_path / "browser.png"))
        finally:
            browser.close()

    shown = terminal_output(frames)
    assert "reply complete" in shown or "token limit" in shown, "no finished reply reached the page"
    here = (f"http://127.0.0.1:{served.port}/", f"ws://127.0.0.1:{served.port}/")
    assert requested and all(url.startswith(here) for url in requested), requested
    assert any("/static/fonts/" in url for url in requested), "the font is served locally"
    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        [conversation] = store.list_conversations()
        user, reply = store.thread(conversation.id)[-2:]
    assert user.content == PROMPT
    assert reply.role == "assistant" and reply.content.strip()
    word = next((w for w in reply.content.split() if len(w.strip(".,:;!?*")) >= 3), "")
    assert word.strip(".,:;!?*") in shown, "the stored reply was drawn in the browser"


def test_serving_beyond_loopback_warns(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, CHATAPP_HOME=str(tmp_path / "home"))
    server = subprocess.Popen(
        [sys.executable, "-m", "chatapp", "serve", "--host", "0.0.0.0", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, 30)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "warning: serving on 0.0.0.0" in err

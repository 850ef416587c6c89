"""``chatapp serve`` in headless Debian Chromium (Playwright): the page shows the chat, a typed
prompt gets a reply from the bundled model, and the reply is what the browser was sent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"chatapp serve did not listen on {port} within {timeout}s")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    home = tmp_path / "home"
    env = dict(os.environ, CHATAPP_HOME=str(home), CHATAPP_GENERATION__MAX_TOKENS="32")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "chatapp", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, 30)
        yield port, home
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
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
def test_browser_chat_with_the_bundled_model(served: tuple[int, Path], tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    port, home = served
    frames: list[str | bytes] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.on(
                "websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame))
            )
            page.goto(f"http://127.0.0.1:{port}/")
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

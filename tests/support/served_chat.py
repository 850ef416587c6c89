"""A real ``chatapp serve`` on a free loopback port, with the access link it printed, and the
chatapp processes it has started (read from /proc, so a test can see that none was)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LINK = re.compile(r"(http://\S+/\?token=([A-Za-z0-9_-]+))")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    link: str
    token: str
    home: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cookie(self) -> str:
        """The page cookie the link sets (it serves the page; it opens no chat)."""
        from chatapp.ui.browser import COOKIE_PREFIX, page_key

        return f"{COOKIE_PREFIX}{self.port}={page_key(self.token)}"

    @property
    def ws_url(self) -> str:
        """The websocket a tab opened through the link uses: the token in its path."""
        return f"ws://127.0.0.1:{self.port}/ws/{self.token}?width=80&height=24"

    def children(self) -> list[int]:
        """Processes the server started (textual-serve runs each tab through a shell)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            match = re.search(r"^PPid:\s+(\d+)", status, re.M)
            if match and int(match.group(1)) == self.process.pid:
                found.append(int(entry.name))
        return found


@contextmanager
def serve_chat(home: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """``chatapp serve --port N`` until the block ends; stderr is kept on ``process``."""
    port = free_port()
    environ = dict(os.environ, CHATAPP_HOME=str(home), **(env or {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "chatapp", "serve", "--port", str(port), *extra],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = LINK.search(line)
        if match is None:
            process.terminate()
            _, err = process.communicate(timeout=30)
            raise AssertionError(f"chatapp serve printed no access link: {line!r} {err!r}")
        wait_for_port(port, 30)
        yield Served(process, port, match.group(1), match.group(2), home)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"chatapp serve did not listen on {port} within {timeout}s")

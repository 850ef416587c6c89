"""A reply survives the end of its process: a real ``chatapp ask`` on the bundled model is killed
mid-reply (SIGKILL, SIGTERM, SIGHUP) and the history still holds the reply — marked interrupted,
with at least the text printed up to half a second before the kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.signals import default_sigint

pytestmark = pytest.mark.slow

SAVE_INTERVAL_S = 0.5
PROMPT = "Write a very long story about a dragon who learns to cook."


class StreamReader:
    """Reads a child's stdout as it arrives, remembering when each piece came."""

    def __init__(self, stream) -> None:
        self.pieces: list[tuple[float, bytes]] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        while True:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                return
            self.pieces.append((time.monotonic(), chunk))

    def text_until(self, moment: float) -> str:
        return b"".join(c for t, c in self.pieces if t <= moment).decode("utf-8", "replace")

    @property
    def started_at(self) -> float | None:
        return self.pieces[0][0] if self.pieces else None


def start_ask(home: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "CHATAPP_HOME": str(home)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatapp",
            "ask",
            "--max-tokens",
            "3000",
            "--temperature",
            "0",
            *extra,
            PROMPT,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=default_sigint,
    )


def stored_reply(home: Path) -> dict:
    env = {**os.environ, "CHATAPP_HOME": str(home)}
    shown = subprocess.run(
        [sys.executable, "-m", "chatapp", "history", "show", "1", "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    messages = json.loads(shown.stdout)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    return messages[1]


@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGKILL", "SIGTERM", "SIGHUP"],
)
def test_a_killed_reply_is_kept_marked_interrupted(
    chatapp_home: Path, signum: int, exit_code: int
) -> None:
    proc = start_ask(chatapp_home)
    reader = StreamReader(proc.stdout)
    try:
        deadline = time.monotonic() + 120
        # At least 20 tokens out, and streaming for longer than one save interval.
        while time.monotonic() < deadline:
            started = reader.started_at
            printed = reader.text_until(time.monotonic())
            if started and len(printed.split()) >= 20 and time.monotonic() - started > 1.5:
                break
            assert proc.poll() is None, "the reply ended before the test could stop it"
            time.sleep(0.05)
        killed_at = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.thread.join(5)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == exit_code, err
    assert "Traceback" not in err
    reply = stored_reply(chatapp_home)
    assert reply["status"] == "interrupted"
    assert reply["turn"]["request"] == {} and reply["turn"]["plan"]["prompt_tokens"] > 0
    kept = reply["content"]
    must_have = reader.text_until(killed_at - SAVE_INTERVAL_S).strip()
    everything = reader.text_until(time.monotonic())
    assert len(must_have.split()) >= 10
    assert kept.startswith(must_have), (must_have[-80:], kept[-80:])
    assert everything.startswith(kept.strip()) or kept.strip().startswith(everything.strip())

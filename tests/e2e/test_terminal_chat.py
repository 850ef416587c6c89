"""The real ``chatapp`` in a real terminal (tmux) with the bundled model: type a prompt, see the
reply, quit, and find the conversation in ``chatapp history list``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHATAPP = str(Path(sys.executable).with_name("chatapp"))
PROMPT = "Name three colours of the rainbow."


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def wait_for_pane(session: str, predicate, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if predicate(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{what} not seen within {timeout}s; the screen was:\n{screen}")


@pytest.fixture
def chat_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CHATAPP_HOME"] = str(tmp_path / "home")
    env["CHATAPP_GENERATION__MAX_TOKENS"] = "40"
    env["CHATAPP_GENERATION__SEED"] = "7"
    env["TERM"] = "xterm-256color"
    return env


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make system-deps)")
def test_chat_in_tmux_with_the_bundled_model(chat_env: dict[str, str], tmp_path: Path) -> None:
    session = f"chatapp-e2e-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "exit-code"
    command = f"{CHATAPP}; echo $? > {exit_file}"
    env_args = [f"{k}={v}" for k, v in chat_env.items() if k.startswith(("CHATAPP_", "TERM"))]
    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "110",
        "-y",
        "32",
        "env",
        *env_args,
        "sh",
        "-c",
        command,
    )
    try:
        wait_for_pane(session, lambda s: "Ask anything" in s, 60, "the first frame")
        wait_for_pane(session, lambda s: "ready ·" in s, 120, "the model loaded")
        tmux("send-keys", "-t", session, "-l", PROMPT)
        tmux("send-keys", "-t", session, "Enter")
        screen = wait_for_pane(
            session,
            lambda s: "reply complete" in s or "token limit" in s,
            180,
            "the finished reply",
        )
        assert "smollm2-135m" in screen, "the reply is headed by the model's name"
        assert PROMPT in screen
        tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 30
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert exit_file.exists(), "chatapp did not quit on Ctrl+Q"
        assert exit_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)

    listing = subprocess.run(
        [CHATAPP, "history", "list"], env=chat_env, capture_output=True, text=True, timeout=60
    )
    assert listing.returncode == 0, listing.stderr
    assert PROMPT[:30] in listing.stdout

    from chatapp.storage import ConversationStore

    with ConversationStore(Path(chat_env["CHATAPP_HOME"]) / "data" / "chatapp.db") as store:
        [conversation] = store.list_conversations()
        reply = store.thread(conversation.id)[-1]
    assert reply.role == "assistant" and reply.content.strip()
    word = next(
        (w.strip(".,:;!?*") for w in reply.content.split() if len(w.strip(".,:;!?*")) >= 3), ""
    )
    assert word in screen, "the stored reply is what was on screen"

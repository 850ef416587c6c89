"""The real chat UI in tmux with the bundled model, ended mid-reply: by SIGKILL, by SIGTERM, and
by closing its terminal (tmux kills the pane: SIGHUP). The reply is in the history, marked
interrupted, holding at least what was on screen half a second before the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.test_terminal_chat import tmux, wait_for_pane

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

CHATAPP = str(Path(sys.executable).with_name("chatapp"))
PROMPT = "Write a very long story about a dragon who learns to cook."
SAVE_INTERVAL_S = 0.5


def reply_lines(screen: str) -> list[str]:
    """The reply's complete lines on screen (between its header and the prompt box)."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if "smollm2-135m ·" in line)
    end = next(i for i, line in enumerate(lines) if "▔▔▔" in line)
    text = [line.split("▌", 1)[1].strip() for line in lines[start + 1 : end] if "▌" in line]
    return [t for t in text[:-1] if t]  # the last line may still be growing


def flat(text: str) -> str:
    return " ".join(text.replace("*", "").split())


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "closed terminal"])
def test_the_reply_survives_the_end_of_the_chat(tmp_path: Path, how: str) -> None:
    home = tmp_path / "home"
    session = f"chatapp-crash-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "exit-code"
    env_args = [f"CHATAPP_HOME={home}", "CHATAPP_GENERATION__MAX_TOKENS=3000",
                "CHATAPP_GENERATION__TEMPERATURE=0", "TERM=xterm-256color"]  # fmt: skip
    tmux("new-session", "-d", "-s", session, "-x", "110", "-y", "32", "env", *env_args,
         "sh", "-c", f"{CHATAPP}; echo $? > {exit_file}")  # fmt: skip
    try:
        wait_for_pane(session, lambda s: "ready ·" in s, 120, "the model loaded")
        tmux("send-keys", "-t", session, "-l", PROMPT)
        tmux("send-keys", "-t", session, "Enter")
        screen = wait_for_pane(
            session, lambda s: "generating" in s and len(reply_lines(s)) >= 4, 120, "the reply"
        )
        seen = reply_lines(tmux("capture-pane", "-p", "-t", session))
        time.sleep(SAVE_INTERVAL_S + 0.1)
        shell = tmux("list-panes", "-t", session, "-F", "#{pane_pid}").split()[0]
        chat = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True).stdout.split()
        assert chat, screen
        if how == "closed terminal":
            tmux("kill-session", "-t", session)
        else:
            os.kill(int(chat[0]), getattr(signal, how))
            deadline = time.monotonic() + 30
            while not exit_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            expected = {"SIGKILL": 128 + 9, "SIGTERM": 143}[how]
            assert exit_file.read_text().strip() == str(expected)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(int(chat[0])):
            time.sleep(0.1)
        # A chat whose terminal is gone must not linger (Textual's shutdown could block on it).
        assert not _alive(int(chat[0])), f"chatapp still running 30 s after {how}"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)

    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        [conversation] = store.list_conversations()
        reply = store.thread(conversation.id)[-1]
    assert reply.role == "assistant" and reply.status == "interrupted"
    stored = flat(reply.content)
    for line in seen:  # everything on screen half a second before the end was saved
        assert flat(line) in stored, (line, stored[-200:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

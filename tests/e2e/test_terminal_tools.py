"""The approval card in the real ``chatapp`` in a real terminal (tmux): the scripted fake model
calls ``math.calculate`` (read-only built-ins set to ask), the card shows the call, ``a`` allows
the tool always (a rule in config.toml), the call shows folded, and it is still there when the
conversation is reopened."""

from __future__ import annotations

import shutil
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from chatapp import paths
from tests.e2e.test_terminal_chat import CHATAPP, tmux, wait_for_pane

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SCRIPT = (
    '{"text": "", "tool_calls": [{"name": "math.calculate", "arguments": '
    '{"expression": "17*23"}}]}\n'
    '{"text": "17 x 23 = 391."}\n'
)


def start(session: str, home: Path, script: Path, exit_file: Path, extra: str = "") -> None:
    env = [
        f"CHATAPP_HOME={home}",
        f"CHATAPP_FAKE_SCRIPT={script}",
        "CHATAPP_TOOLS__ALLOW_READ_ONLY=false",
        'CHATAPP_TOOLS__OFFERED=["math"]',
        "TERM=xterm-256color",
    ]
    command = f"{CHATAPP} --backend fake {extra}; echo $? > {exit_file}"
    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "100",
        "-y",
        "30",
        "env",
        *env,
        "sh",
        "-c",
        command,
    )


def quit_and_wait(session: str, exit_file: Path) -> None:
    tmux("send-keys", "-t", session, "C-q")
    deadline = time.monotonic() + 30
    while not exit_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert exit_file.read_text().strip() == "0"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make system-deps)")
def test_the_approval_card_in_tmux(tmp_path: Path, chatapp_home: Path) -> None:
    home, script = chatapp_home, tmp_path / "script.jsonl"
    script.write_text(SCRIPT, encoding="utf-8")
    session = f"chatapp-tools-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "exit-1"
    start(session, home, script, exit_file)
    try:
        wait_for_pane(session, lambda s: "ready ·" in s, 60, "the fake model ready")
        # The header has a tools field (its value may be cut to "…" on a narrow header; the
        # Pilot tests check the value itself).
        wait_for_pane(session, lambda s: "tools " in s, 30, "the offered tools in the header")
        tmux("send-keys", "-t", session, "-l", "what is 17 times 23")
        time.sleep(0.5)  # typed faster than a person: Enter right after would be a line break
        tmux("send-keys", "-t", session, "Enter")
        card = wait_for_pane(session, lambda s: "Allow once" in s, 30, "the approval card")
        assert "math.calculate" in card and '"expression": "17*23"' in card
        tmux("send-keys", "-t", session, "a")
        # (the "now runs without asking" notice may cover the answer for a few seconds)
        screen = wait_for_pane(
            session,
            lambda s: "reply complete" in s and "17 x 23 = 391." in s,
            30,
            "the answer",
        )
        assert "▸ math.calculate · " in screen
        quit_and_wait(session, exit_file)
    finally:
        kill_session(session)
    config = tomllib.loads(paths.config_file().read_text(encoding="utf-8"))
    assert config["tools"]["rules"] == {"math.calculate": "allow"}

    session = f"chatapp-tools-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "exit-2"
    start(session, home, script, exit_file, extra="-c 1")
    try:
        screen = wait_for_pane(session, lambda s: "17 x 23 = 391." in s, 60, "the reopened chat")
        assert "▸ math.calculate · " in screen
        quit_and_wait(session, exit_file)
    finally:
        kill_session(session)


def kill_session(session: str) -> None:
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)

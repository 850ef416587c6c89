"""Helpers for the security suite: a real ``chatapp`` subprocess (optionally on a real pseudo
terminal), and a snapshot of everything stored, to show that a refused input changed nothing."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Run:
    code: int
    out: str
    err: str

    def assert_refused(self, code: int, *phrases: str) -> None:
        """One clear line on stderr naming the problem, the exit code, no traceback."""
        assert self.code == code, (self.code, self.out, self.err)
        assert "Traceback" not in self.err, self.err
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), self.err
        for phrase in phrases:
            assert phrase in lines[0], (phrase, lines[0])


def chatapp_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATAPP_")}
    env.update(CHATAPP_HOME=str(home), CHATAPP_BACKEND__KIND="fake", **extra)
    return env


def run_chatapp(
    home: Path,
    *args: str | bytes,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Run:
    """``python -m chatapp ARGS`` as its own process (stdin a pipe, even when empty)."""
    argv = [os.fsdecode(a) if isinstance(a, bytes) else a for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "chatapp", *argv],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=env or chatapp_env(home),
        timeout=timeout,
    )
    return Run(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def run_on_terminal(
    home: Path, *args: str, env: dict[str, str] | None = None, seconds: float = 60
) -> tuple[int, bytes]:
    """``chatapp ARGS`` with stdout on a real pseudo terminal; (exit code, bytes it wrote)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec chatapp with the pty as its terminal
        os.execve(
            sys.executable, [sys.executable, "-m", "chatapp", *args], env or chatapp_env(home)
        )
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def stored_state(home: Path) -> tuple[object, ...]:
    """Every conversation and message and every settings file, to compare before and after."""
    from chatapp.storage import ConversationStore

    db = home / "data" / "chatapp.db"
    rows: list[object] = []
    if db.exists():
        with ConversationStore(db) as store:
            for conversation in store.list_conversations():
                rows.append((conversation.id, conversation.title))
                rows.extend(
                    (m.id, m.role, m.content, m.status) for m in store.messages(conversation.id)
                )
    files = tuple((p.name, p.read_bytes()) for p in sorted((home / "config").glob("*.toml")))
    return tuple(rows), files


@pytest.fixture
def home(chatapp_home: Path) -> Path:
    """This test's CHATAPP_HOME with one stored conversation in it (so a refusal can be shown
    to leave it intact)."""
    run = run_chatapp(chatapp_home, "ask", "What is kept?")
    assert run.code == 0, run.err
    return chatapp_home

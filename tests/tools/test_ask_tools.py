"""``chatapp ask`` with tools, as a user runs it: the real executable, the scripted fake
backend (CHATAPP_FAKE_SCRIPT) playing the model, real built-ins and a real MCP stdio server,
real SQLite. Approval without a terminal, usage errors, and a SIGKILL during a call."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHATAPP = str(Path(sys.executable).with_name("chatapp"))
SERVERS = str(Path(__file__).resolve().parents[1] / "support" / "mcp_servers.py")


def script(home: Path, *replies: dict) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "script.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in replies), encoding="utf-8")
    return {**os.environ, "CHATAPP_FAKE_SCRIPT": str(path), "CHATAPP_BACKEND__KIND": "fake"}


def ask(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATAPP, "ask", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


CALC = {"text": "", "tool_calls": [{"name": "math.calculate", "arguments": {"expression": "6*7"}}]}


def test_ask_runs_a_built_in_and_lists_it_in_json(chatapp_home: Path) -> None:
    env = script(chatapp_home, CALC, {"text": "It is 42."})
    done = ask(env, "--tools", "math", "--json", "what is six times seven?")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["text"] == "It is 42." and data["steps"] == 2
    assert data["tool_calls"] == [
        {
            "id": "call_1_0",
            "name": "math.calculate",
            "arguments": {"expression": "6*7"},
            "status": "ok",
            "duration_s": data["tool_calls"][0]["duration_s"],
            "result": "6*7 = 42",
        }
    ]


def test_a_call_in_a_pipe_is_denied_with_the_flag_that_allows_it(chatapp_home: Path) -> None:
    env = script(chatapp_home, CALC, {"text": "I could not calculate."})
    env["CHATAPP_TOOLS__ALLOW_READ_ONLY"] = "false"
    denied = ask(env, "--tools", "math", "six times seven")
    assert denied.returncode == 0, denied.stderr
    assert "▸ math.calculate · 0.0 s · denied" in denied.stderr
    assert "--allow-tool math.calculate" in denied.stderr
    env = script(chatapp_home, CALC, {"text": "42"})
    env["CHATAPP_TOOLS__ALLOW_READ_ONLY"] = "false"
    allowed = ask(env, "--tools", "math", "--allow-tool", "math", "six times seven")
    assert allowed.returncode == 0 and "denied" not in allowed.stderr
    assert allowed.stdout.strip() == "42"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--tools", "math;rm"], "--tools: 'math;rm' is not a tool server"),
        (["--tools", "weather"], "no tool server 'weather'"),
        (["--tool-choice", "math.calculate"], "no tools are offered"),
        (["--tools", "clock", "--tool-choice", "math.calculate"], "not an offered tool"),
        (["--max-steps", "0"], "--max-steps"),
    ],
)
def test_bad_tool_flags_are_one_line_exit_2(
    chatapp_home: Path, args: list[str], problem: str
) -> None:
    env = script(chatapp_home, {"text": "unused"})
    done = ask(env, *args, "hello")
    assert done.returncode == 2, done.stderr
    assert problem in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3


@pytest.mark.slow
def test_sigkill_during_a_call_leaves_it_interrupted_and_the_history_readable(
    chatapp_home: Path,
) -> None:
    env = script(chatapp_home, {"text": "", "tool_calls": [{"name": "slow.hang"}]})
    config = chatapp_home / "config"
    added = subprocess.run(
        [CHATAPP, "mcp", "add", "slow", "--command", sys.executable, "--arg", SERVERS],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen(
        [CHATAPP, "ask", "--tools", "slow", "--allow-tool", "slow", "wait for it"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    database = next(chatapp_home.rglob("*.db"), None)
    deadline = time.monotonic() + 90
    running = False
    while time.monotonic() < deadline and not running:
        time.sleep(0.3)
        database = database or next(chatapp_home.rglob("*.db"), None)
        if database is None:
            continue
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                rows = db.execute("SELECT status FROM messages WHERE role = 'tool'").fetchall()
        except sqlite3.OperationalError:  # created, not migrated yet
            continue
        running = rows == [("streaming",)]
    assert running, proc.stderr.read().decode() if proc.poll() is not None else "no tool row"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    shown = subprocess.run(
        [CHATAPP, "history", "export", "1", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)["messages"]
    assert [(m["role"], m["status"]) for m in rows] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("tool", "interrupted"),
    ]
    assert rows[1]["tool_calls"][0]["function"]["name"] == "slow.hang"
    assert config.exists()

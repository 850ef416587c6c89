"""``chatapp ask`` end to end with the bundled SmolLM2 through real llama.cpp (subprocesses)."""

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

from tests.support.signals import default_sigint

pytestmark = pytest.mark.slow


def chatapp(
    args: list[str], home: Path, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHATAPP_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "chatapp", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def test_ask_json_with_the_bundled_model(chatapp_home: Path) -> None:
    result = chatapp(
        ["ask", "--json", "--seed", "1", "--max-tokens", "24", "What is the capital of France?"],
        chatapp_home,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["text"].strip()
    assert data["model"] == "smollm2-135m"
    assert data["stats"]["completion_tokens"] > 0 and data["stats"]["prompt_tokens"] > 5
    assert data["stats"]["decode_tokens_per_s"] > 0
    listing = chatapp(["history", "list", "--json"], chatapp_home)
    assert json.loads(listing.stdout)[0]["id"] == data["conversation_id"]


def test_piped_notes_are_summarized(chatapp_home: Path) -> None:
    notes = "# Notes\nThe meeting moved to Tuesday. Bring the budget draft.\n"
    result = chatapp(
        ["ask", "--max-tokens", "24", "--seed", "2", "summarize this"], chatapp_home, stdin=notes
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    db = sqlite3.connect(chatapp_home / "data" / "chatapp.db")
    stored = db.execute("SELECT content FROM messages WHERE role='user'").fetchone()[0]
    assert stored.startswith("summarize this\n\n# Notes") and "Tuesday" in stored


@pytest.mark.parametrize("kind", ["missing", "directory", "not-gguf", "truncated"])
def test_bad_model_files_exit_2_with_one_line(
    chatapp_home: Path, tmp_path: Path, bundled_gguf: Path, kind: str
) -> None:
    target = tmp_path / "model.gguf"
    if kind == "directory":
        target.mkdir()
    elif kind == "not-gguf":
        target.write_text("just some text, not a model\n" * 100)
    elif kind == "truncated":
        with bundled_gguf.open("rb") as src:
            target.write_bytes(src.read(2_000_000))
    result = chatapp(["ask", "--model", str(target), "hi"], chatapp_home, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model ") and str(target) in lines[0]
    assert "Traceback" not in result.stderr


def test_ctrl_c_keeps_the_partial_reply_and_exits_130(chatapp_home: Path) -> None:
    env = {**os.environ, "CHATAPP_HOME": str(chatapp_home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatapp",
            "ask",
            "--max-tokens",
            "400",
            "--temperature",
            "0.8",
            "--seed",
            "4",
            "Write a very long story about a dragon who learns to cook.",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=default_sigint,
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)  # the reply has started streaming
    assert first
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    db = sqlite3.connect(chatapp_home / "data" / "chatapp.db")
    status, content = db.execute(
        "SELECT status, content FROM messages WHERE role='assistant'"
    ).fetchone()
    assert status == "interrupted" and content.strip()


def test_prompt_longer_than_context_is_cut_with_a_note(chatapp_home: Path) -> None:
    """A long paste is the user's text: cut to fit, with the note ``run`` gives, as in the chat."""
    result = chatapp(
        ["ask", "--n-ctx", "512", "--max-tokens", "8", "-"], chatapp_home, stdin="word " * 3000
    )
    assert result.returncode == 0, result.stderr
    assert "input cut to its first" in result.stderr and "(512 tokens)" in result.stderr


def test_a_system_prompt_longer_than_context_is_a_clear_error(chatapp_home: Path) -> None:
    result = chatapp(["ask", "--n-ctx", "512", "--system", "word " * 3000, "hi"], chatapp_home)
    assert result.returncode == 2
    assert result.stderr.startswith("error: prompt too long") and "512" in result.stderr

"""Input with no end: ``chatapp ask -`` fed by /dev/zero, /dev/urandom or ``yes``, and a template
variable read from ``@/dev/zero``, used to read until memory ran out (5.4 GB, then a
MemoryError or a timeout). They are read up to the model's context in bytes (with a margin) and
refused in one line, exit 2, with the history untouched. A template file that expands without
end ("billion laughs": nested YAML aliases) is refused by ``templates list``, ``validate`` and
``show`` in one line instead of hanging them, and so is a template file that is a named pipe.
File names with escape sequences are printed escaped by ``chatapp index`` on a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatapp.cli.stdin_text import MIN_INPUT_CAP
from tests.security.conftest import Run, chatapp_env, run_chatapp, run_on_terminal, stored_state

CAP_MIB = f"more than {MIN_INPUT_CAP / (1024 * 1024):g} MiB"


def ask_fed_by(home: Path, source: list[str] | str) -> tuple[Run, float]:
    """``chatapp ask -`` with stdin from a device (a path) or a command's stdout (argv)."""
    started = time.monotonic()
    feeder = None
    if isinstance(source, str):
        stdin = open(source, "rb")  # noqa: SIM115 - closed below
    else:
        feeder = subprocess.Popen(source, stdout=subprocess.PIPE)
        stdin = feeder.stdout  # type: ignore[assignment]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "chatapp", "ask", "-"],
            stdin=stdin,
            capture_output=True,
            env=chatapp_env(home),
            timeout=60,
        )
    finally:
        stdin.close()
        if feeder is not None:
            feeder.kill()
            feeder.wait()
    run = Run(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode())
    return run, time.monotonic() - started


@pytest.mark.parametrize("source", ["/dev/zero", "/dev/urandom", ["yes"]], ids=str)
def test_endless_stdin_is_refused_at_the_cap(home: Path, source: list[str] | str) -> None:
    before = stored_state(home)
    run, seconds = ask_fed_by(home, source)
    run.assert_refused(2, "stdin", CAP_MIB, "context")
    assert seconds < 30, f"took {seconds:.0f} s"
    assert stored_state(home) == before


def test_a_template_variable_from_dev_zero_is_refused_at_the_cap(home: Path) -> None:
    before = stored_state(home)
    run = run_chatapp(home, "run", "qa", "who?", "--var", "passage=@/dev/zero", timeout=60)
    run.assert_refused(2, "--var passage", "/dev/zero", CAP_MIB)
    assert stored_state(home) == before


def test_stdin_just_under_the_cap_is_still_a_prompt(home: Path) -> None:
    """The cap is not a limit on ordinary input: a long text below it is asked as usual."""
    text = ("A sentence about routers. " * 40_000)[: MIN_INPUT_CAP - 100].encode()
    run = run_chatapp(home, "ask", "-", stdin=text)
    assert run.code == 0, run.err


def billion_laughs(levels: int = 9) -> str:
    lines = ["name: lol", "title: Laughs", 'a: &a ["lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghijklm"[: levels - 1]:
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    lines.append("template: 'Say {{ input }}'")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "command", [["templates", "list"], ["templates", "validate"], ["templates", "show", "lol"]]
)
def test_a_billion_laughs_template_is_refused_in_one_line(
    chatapp_home: Path, command: list[str]
) -> None:
    templates = chatapp_home / "config" / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "lol.yaml").write_text(billion_laughs())
    started = time.monotonic()
    run = run_chatapp(chatapp_home, *command, timeout=60)
    assert time.monotonic() - started < 30
    assert "Traceback" not in run.err
    problems = [line for line in run.err.splitlines() if "lol.yaml" in line]
    assert len(problems) == 1 and "anchors and aliases" in problems[0], run.err
    assert run.code == (0 if command[1] == "list" else 2), run.err
    if command[1] == "list":
        assert "summarize" in run.out, "the other templates are still listed"


def test_a_template_file_that_is_a_named_pipe_is_refused(
    chatapp_home: Path, tmp_path: Path
) -> None:
    pipe = tmp_path / "pipe.yaml"
    os.mkfifo(pipe)
    run = run_chatapp(chatapp_home, "templates", "validate", str(pipe), timeout=30)
    assert run.code == 2 and "not a regular file" in run.err, run.err


def test_index_prints_file_names_escaped_on_a_terminal(chatapp_home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    evil = "notes \x1b]0;PWNED\x07 \x1b[2J"
    (docs / f"{evil}.md").write_text("# Notes\n\nThe router resets after ten seconds.\n")
    (docs / f"{evil}.bin.txt").write_bytes(b"\x00\x01binary\x00" * 10)  # skipped, named
    code, out = run_on_terminal(
        chatapp_home, "index", "--embedder", "hashing", "-C", "docs", str(docs), seconds=120
    )
    assert code == 0, out
    assert b"\x1b]0;PWNED" not in out and b"\x1b[2J" not in out, out
    assert b"notes \\x1b]0;PWNED\\x07 \\x1b[2J" in out, out

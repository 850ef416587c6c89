"""Usage errors through the real ``chatapp`` executable, for every command and command group.

The commands are read from the assembled typer app, so a command added later is covered too.
Each bad usage must end in one short message on stderr that names the bad token, exit 2, and no
traceback — with the typer (and its click, vendored or not) that the venv really has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHATAPP = Path(sys.executable).with_name("chatapp")
BAD_OPTION = "--no-such-flag-x9"
BAD_COMMAND = "no-such-command-x9"


def _commands() -> list[tuple[tuple[str, ...], bool]]:
    """Every command path in the app, each with whether it is a group."""
    import typer.main

    from chatapp.cli import build_app

    found: list[tuple[tuple[str, ...], bool]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        sub = getattr(command, "commands", None)
        found.append((path, sub is not None))
        for name, child in sorted((sub or {}).items()):
            if not getattr(child, "hidden", False):
                walk(child, (*path, name))

    walk(typer.main.get_command(build_app()), ())
    return found


COMMANDS = _commands()


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHATAPP_HOME": str(home), "COLUMNS": "100"}
    return subprocess.run(
        [str(CHATAPP), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def _assert_usage_error(done: subprocess.CompletedProcess[str], token: str) -> None:
    shown = f"stdout={done.stdout!r} stderr={done.stderr!r}"
    assert done.returncode == 2, shown
    assert "Traceback" not in done.stderr + done.stdout, shown
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3, shown
    assert token in done.stderr, shown


def test_every_command_group_is_found() -> None:
    paths = {path for path, _ in COMMANDS}
    assert {("ask",), ("run",), ("history",), ("history", "list"), ("models", "list")} <= paths
    assert len(paths) > 20


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "chatapp")
def test_an_unknown_option_is_one_line_and_exit_2(path: tuple[str, ...], chatapp_home) -> None:
    _assert_usage_error(_run([*path, BAD_OPTION], chatapp_home), BAD_OPTION)


@pytest.mark.parametrize(
    "path", [p for p, group in COMMANDS if group], ids=lambda p: " ".join(p) or "chatapp"
)
def test_an_unknown_command_is_one_line_and_exit_2(path: tuple[str, ...], chatapp_home) -> None:
    _assert_usage_error(_run([*path, BAD_COMMAND], chatapp_home), BAD_COMMAND)


@pytest.mark.parametrize(
    ("args", "token", "suggestion"),
    [
        (["askk"], "askk", "ask"),
        (["history", "lst"], "lst", "list"),
        (["ask", "--temprature", "1"], "--temprature", "--temperature"),
        (["ask", "--temperature", "abc"], "abc", "--temperature"),
        (["ask", "--max-tokens", "many"], "many", "--max-tokens"),
        (["history", "show", "first"], "first", "ID"),
        (["run"], "run", "NAME"),
    ],
)
def test_the_issue_examples_name_the_token_and_offer_the_fix(
    args: list[str], token: str, suggestion: str, chatapp_home
) -> None:
    done = _run(args, chatapp_home)
    _assert_usage_error(done, token)
    assert suggestion.lower() in done.stderr.lower()


def test_a_bare_group_shows_its_help_without_a_traceback(chatapp_home) -> None:
    done = _run(["history"], chatapp_home)
    assert done.returncode in (0, 2)
    assert "Traceback" not in done.stderr
    assert "list" in done.stdout + done.stderr


def test_a_control_character_in_the_bad_token_is_shown_escaped(chatapp_home) -> None:
    done = _run(["ask", "--bad\x1b]0;TITLE\x07"], chatapp_home)
    assert done.returncode == 2 and "\x1b" not in done.stderr and "Traceback" not in done.stderr


def test_real_clicks_exceptions_are_handled_like_typers_own(capsys) -> None:
    # typer 0.2x raises typer._click's classes; a package using click itself raises click's.
    import click
    import typer

    from chatapp.cli import _click_kind, _show_click_error

    vendored = sys.modules[typer.BadParameter.__module__]
    for module in {click.exceptions, vendored}:
        assert _click_kind(module.UsageError("x")) == "ClickException"
        assert _click_kind(module.NoSuchOption("--nope")) == "ClickException"
    assert _click_kind(click.exceptions.Exit(3)) == "Exit"
    assert _click_kind(typer.Exit(3)) == "Exit"
    assert _click_kind(click.exceptions.Abort()) == "Abort"
    assert _click_kind(ValueError("x")) is None
    assert _show_click_error(click.exceptions.NoSuchOption("--nope")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: chatapp: No such option")
    assert "--nope" in err

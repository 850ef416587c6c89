"""``chatapp run NAME INPUT``: an INPUT that names a file is a file.

A typo'd path (``nosuchfile.md``) used to be summarised as the text "nosuchfile.md", exit 0. A
word that looks like a path and names nothing is now exit 2 naming it; ``--text`` takes it as
text; real files and ordinary text work as before.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.cli import main
from chatapp.cli.template_run import looks_like_path
from chatapp.engine import factory
from chatapp.engine.fake import FakeBackend

CHATAPP = Path(sys.executable).with_name("chatapp")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    backend = FakeBackend()
    monkeypatch.setattr(factory, "create_backend", lambda settings, **kw: backend)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return backend


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("value", "path_like"),
    [
        ("nosuchfile.md", True),
        ("notes/today", True),
        ("~/report.pdf", True),
        ("./x", True),
        ("data.tar.gz", True),
        ("https://example.com/page", True),
        ("3.14", False),
        ("e.g.", False),
        ("hello", False),
        ("summarize this file.md please", False),
        ("안녕하세요.", False),
        ("", False),
    ],
)
def test_what_looks_like_a_path(value: str, path_like: bool) -> None:
    assert looks_like_path(value) is path_like


@pytest.mark.parametrize("name", ["nosuchfile.md", "notes/missing", "~/no-such-dir/a.txt"])
def test_a_missing_file_is_exit_2_naming_it(capsys, fake, tmp_path, monkeypatch, name) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "run", "summarize", name)
    assert code == 2 and out == ""
    assert err.startswith(f"error: input {name}: no such file") and "--text" in err
    assert len(err.strip().splitlines()) == 1
    assert fake.calls == []  # nothing was invented


def test_a_folder_is_named_as_a_folder(capsys, fake, tmp_path, monkeypatch) -> None:
    (tmp_path / "docs.d").mkdir()
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "run", "summarize", "docs.d")
    assert code == 2 and "input docs.d: is a folder" in err and fake.calls == []


def test_text_flag_takes_the_word_as_text(capsys, fake, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = cli(capsys, "run", "summarize", "--text", "nosuchfile.md")
    assert code == 0 and fake.last_call.messages[-1].content.endswith("nosuchfile.md")


def test_text_flag_does_not_read_an_existing_file(capsys, fake, tmp_path, monkeypatch) -> None:
    (tmp_path / "notes.md").write_text("the file's words", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    cli(capsys, "run", "summarize", "notes.md")
    assert fake.last_call.messages[-1].content.endswith("the file's words")
    cli(capsys, "run", "summarize", "--text", "notes.md")
    assert fake.last_call.messages[-1].content.endswith("notes.md")


def test_ordinary_text_is_still_text(capsys, fake, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = cli(capsys, "run", "translate", "Version 3.14 is out.", "--var", "target=ko")
    assert code == 0 and fake.last_call.messages[-1].content.endswith("Version 3.14 is out.")


def test_the_real_executable_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CHATAPP), "run", "summarize", "nosuchfile.md", "--backend", "fake"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CHATAPP_HOME": str(tmp_path / "home")},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "nosuchfile.md: no such file" in done.stderr and "Traceback" not in done.stderr

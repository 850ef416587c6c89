"""``chatapp ask`` / ``history`` / ``config`` through the real CLI entry point (fake backend)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from chatapp import paths
from chatapp.cli import main
from chatapp.storage import ConversationStore


def run_cli(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    stdin: str = "",
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tty_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Tty(""))


def test_ask_streams_and_stores(capsys, tty_stdin) -> None:
    code, out, _ = run_cli(["ask", "--backend", "fake", "hello", "there"], capsys)
    assert code == 0 and out == "You said: hello there\n"
    with ConversationStore(paths.database_path()) as s:
        conv = s.list_conversations()[0]
        assert [m.content for m in s.thread(conv.id)] == ["hello there", "You said: hello there"]


def test_ask_json_object(capsys, tty_stdin) -> None:
    code, out, _ = run_cli(["ask", "--backend", "fake", "--json", "--seed", "3", "hi"], capsys)
    data = json.loads(out)
    assert code == 0
    assert set(data) >= {"text", "conversation_id", "message_id", "model", "stats"}
    assert set(data["stats"]) >= {
        "prompt_tokens",
        "completion_tokens",
        "ttft_s",
        "decode_tokens_per_s",
    }
    assert data["text"] == "You said: hi" and data["model"] == "fake-model"


def test_stdin_is_appended_to_the_prompt(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(
        ["ask", "--backend", "fake", "summarize this"],
        capsys,
        stdin="line one\nline two\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and out.startswith("You said: summarize this\n\nline one\nline two")


def test_dash_reads_only_stdin(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(
        ["ask", "--backend", "fake", "-"], capsys, stdin="from a pipe", monkeypatch=monkeypatch
    )
    assert code == 0 and out == "You said: from a pipe\n"


def test_continue_and_conversation(capsys, tty_stdin) -> None:
    run_cli(["ask", "--backend", "fake", "first"], capsys)
    code, out, _ = run_cli(["ask", "--backend", "fake", "--continue", "--json", "second"], capsys)
    first_id = json.loads(out)["conversation_id"]
    code, out, _ = run_cli(
        ["ask", "--backend", "fake", "--conversation", str(first_id), "--json", "third"], capsys
    )
    assert json.loads(out)["conversation_id"] == first_id
    with ConversationStore(paths.database_path()) as s:
        assert s.get_conversation(first_id).message_count == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ask", "--backend", "fake"], "empty prompt"),
        (["ask", "--backend", "fake", "  "], "empty prompt"),
        (["ask", "--backend", "fake", "--conversation", "99", "hi"], "conversation 99: no such"),
        (["ask", "--backend", "fake", "--conversation", "1", "--continue", "hi"], "give only one"),
        (["ask", "--backend", "nope", "hi"], "backend.kind' (from the command line)"),
        (["ask", "--model", "no-such-model", "hi"], "model 'no-such-model'"),
        (["ask", "--model", "/nonexistent/m.gguf", "hi"], "/nonexistent/m.gguf: no such file"),
        (["history", "show", "5"], "conversation 5: no such conversation"),
        (["history", "rm", "5"], "conversation 5: no such conversation"),
        (["history", "export", "1", "--format", "pdf"], "--format 'pdf'"),
        (["config", "set", "generation.nope", "1"], "no such field"),
        (["config", "set", "generation.temperature", "99"], "generation.temperature"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tty_stdin, argv, message) -> None:
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err


def test_corrupt_history_db_is_reported_and_kept(capsys, tty_stdin) -> None:
    db = paths.database_path()
    db.write_bytes(b"\x00garbage" * 500)
    before = db.read_bytes()
    code, _, err = run_cli(["history", "list"], capsys)
    assert code == 2 and "cannot be opened" in err and str(db) in err
    assert db.read_bytes() == before


def test_history_commands(capsys, tty_stdin, tmp_path: Path) -> None:
    run_cli(["ask", "--backend", "fake", "이 영화 재미있나요?"], capsys)
    code, out, _ = run_cli(["history", "list", "--json"], capsys)
    conv = json.loads(out)[0]
    assert conv["title"] == "이 영화 재미있나요?"
    code, out, _ = run_cli(["history", "search", "영화"], capsys)
    assert code == 0 and "영화" in out
    code, out, _ = run_cli(["history", "show", str(conv["id"])], capsys)
    assert "## You" in out and "## Assistant" in out
    target = tmp_path / "conv.json"
    code, out, _ = run_cli(
        ["history", "export", str(conv["id"]), "-f", "json", "-o", str(target)], capsys
    )
    assert json.loads(target.read_text())["conversation"]["id"] == conv["id"]
    code, out, _ = run_cli(["history", "rm", str(conv["id"])], capsys)
    assert code == 0 and "deleted" in out
    code, out, _ = run_cli(["history", "list"], capsys)
    assert "no conversations yet" in out


def test_config_show_path_set(capsys, tty_stdin) -> None:
    code, out, _ = run_cli(["config", "path"], capsys)
    assert out.strip() == str(paths.config_file())
    code, out, _ = run_cli(["config", "set", "generation.temperature", "0.25"], capsys)
    assert code == 0
    code, out, _ = run_cli(["config", "show", "--json"], capsys)
    assert json.loads(out)["generation"]["temperature"] == 0.25


def test_ctrl_c_mid_reply_exits_130_and_keeps_partial(capsys, tty_stdin, monkeypatch) -> None:
    from chatapp.domain import TokenEvent
    from chatapp.engine import factory
    from chatapp.engine.fake import FakeBackend

    class InterruptedBackend(FakeBackend):
        def stream_chat(self, messages, params, cancel=None):
            yield TokenEvent("partial ")
            raise KeyboardInterrupt

    monkeypatch.setattr(factory, "create_backend", lambda settings, **kw: InterruptedBackend())
    code, out, err = run_cli(["ask", "tell me a story"], capsys)
    assert code == 130 and out.startswith("partial") and "interrupted" in err
    with ConversationStore(paths.database_path()) as s:
        reply = s.thread(s.list_conversations()[0].id)[-1]
        assert (reply.role, reply.content, reply.status) == ("assistant", "partial ", "interrupted")

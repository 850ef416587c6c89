"""Bytes that are not text, wherever they come in: piped stdin, command-line arguments, a
setting's value, a file name inside an indexed folder. Each is one clear line naming the input
and the bad byte, exit 2, and the history is unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatapp.cli.stdin_text import check_text, decode_input
from chatapp.errors import UsageError
from tests.security.conftest import run_chatapp, stored_state


def test_latin1_bytes_on_stdin_of_ask(home: Path) -> None:
    before = stored_state(home)
    run = run_chatapp(home, "ask", "summarize this", stdin=b"caf\xe9 au lait")
    run.assert_refused(2, "stdin", "not valid UTF-8", "0xe9", "offset 3")
    assert stored_state(home) == before


def test_korean_legacy_encoding_on_stdin_of_run(home: Path) -> None:
    before = stored_state(home)
    euc_kr = "안녕하세요".encode("euc-kr")
    run = run_chatapp(home, "run", "summarize", "-", stdin=euc_kr)
    run.assert_refused(2, "stdin", f"0x{euc_kr[0]:02x}", "iconv -f cp949")
    assert stored_state(home) == before


def test_binary_file_piped_to_ask(home: Path) -> None:
    before = stored_state(home)
    run = run_chatapp(home, "ask", "what is this", stdin=b"\x7fELF\x02\x01\x01\x00\x00\x00")
    run.assert_refused(2, "stdin", "binary data", "NUL")
    assert stored_state(home) == before


def test_non_utf8_bytes_in_the_prompt_argument(home: Path) -> None:
    before = stored_state(home)
    run = run_chatapp(home, "ask", os.fsencode("caf") + b"\xe9 x")
    run.assert_refused(2, "argument 2", "0xe9")
    assert stored_state(home) == before


def test_non_utf8_bytes_in_a_setting_value(home: Path) -> None:
    before = stored_state(home)
    run = run_chatapp(home, "config", "set", "chat.system_prompt", b"r\xe9ponds")
    run.assert_refused(2, "argument 4", "0xe9")
    assert stored_state(home) == before


def test_utf8_with_bom_and_windows_line_endings_is_accepted(home: Path) -> None:
    """Not an attack: what Windows editors write is plain text and goes through as such."""
    run = run_chatapp(home, "ask", "sum", stdin="\ufeff카페 café\r\nline two\r\n".encode())
    assert run.code == 0, run.err
    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        latest = store.list_conversations()[0]
        user = next(m for m in store.thread(latest.id) if m.role == "user")
    assert user.content == "sum\n\n카페 café\nline two"


def test_file_with_a_non_utf8_name_is_skipped_not_a_crash(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok.md").write_text("# Fine\n\nA readable file about tomatoes.\n")
    bad = os.fsencode(folder) + b"/caf\xe9.md"
    with open(bad, "wb") as out:
        out.write(b"# Hidden name\n\nText under a Latin-1 file name.\n")
    run = run_chatapp(home, "index", "--embedder", "hashing", "-C", "names", str(folder))
    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    assert "caf\\xe9.md: file name is not valid UTF-8 (rename it to index it)" in run.err
    assert "1 indexed" in run.err


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "byte 0xff at offset 0"),
        ("한국어".encode()[:-1], "at offset 6"),  # cut in the middle of a character
    ],
)
def test_decode_input_names_the_byte(data: bytes, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        decode_input(data, "stdin")


def test_lone_surrogate_from_python_is_refused() -> None:
    with pytest.raises(UsageError, match="lone surrogate U\\+D800"):
        check_text("ok \ud800", "text")

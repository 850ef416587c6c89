"""Text chatapp did not write (a stored reply, a document, a title, a template file) never
drives the user's terminal: printed to a real pseudo terminal, ESC sequences and other
control characters arrive escaped (``\\x1b``); printed to a pipe or a file, the stored text
arrives exactly as stored; in the chat UI they are drawn escaped as well."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from chatapp.domain import Source
from chatapp.terminal_text import safe_for_terminal
from tests.security.conftest import chatapp_env, run_chatapp, run_on_terminal

# Set the window title (OSC, ended by ST), clear the screen (CSI), and the one-byte C1 CSI.
EVIL = "\x1b]0;PWNED\x1b\\ \x1b[2J \x9b31m \x07"
RAW = [b"\x1b]0;PWNED", b"\x1b[2J", "\x9b".encode()]


def seed_conversation(home: Path, title: str = "notes") -> int:
    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        conversation = store.create_conversation(title=title)
        user = store.add_message(conversation.id, "user", "what does the file say?")
        store.add_message(
            conversation.id, "assistant", f"It says: {EVIL} and more", parent_id=user.id
        )
        return conversation.id


def assert_escaped(out: bytes) -> None:
    for raw in RAW:
        assert raw not in out, raw
    assert b"\\x1b]0;PWNED" in out and b"\\x1b[2J" in out and b"\\x9b31m" in out


def test_history_show_on_a_terminal_escapes_a_stored_reply(chatapp_home: Path) -> None:
    conversation = seed_conversation(chatapp_home)
    code, out = run_on_terminal(chatapp_home, "history", "show", str(conversation))
    assert code == 0, out
    assert_escaped(out)


def test_history_export_to_a_pipe_keeps_the_text_exactly(chatapp_home: Path) -> None:
    conversation = seed_conversation(chatapp_home)
    run = run_chatapp(chatapp_home, "history", "export", str(conversation))
    assert run.code == 0, run.err
    assert f"It says: {EVIL} and more" in run.out


def test_history_search_and_list_escape_titles(chatapp_home: Path) -> None:
    seed_conversation(chatapp_home, title=f"diary {EVIL}")
    code, out = run_on_terminal(chatapp_home, "history", "search", "file")
    assert code == 0, out
    assert b"\x1b]0;PWNED" not in out and b"\\x1b]0;PWNED" in out
    code, out = run_on_terminal(chatapp_home, "history", "list")
    assert code == 0, out
    assert b"\x1b]0;PWNED" not in out and b"\\x1b]0;PWNED" in out


def test_a_title_is_never_read_as_rich_markup(chatapp_home: Path) -> None:
    seed_conversation(chatapp_home, title="[/] [bold red]not a style[/bold red] [link=x]")
    run = run_chatapp(chatapp_home, "history", "list")
    assert run.code == 0 and "Traceback" not in run.err, run.err
    assert "[/] [bold red]not a style[/bold red] [link=x]" in run.out


def test_search_escapes_control_characters_from_a_document(
    chatapp_home: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.md").write_text(
        f"# Router manual\n\nReset the router by holding the button {EVIL} for ten seconds.\n"
    )
    run = run_chatapp(chatapp_home, "index", "--embedder", "hashing", "-C", "docs", str(docs))
    assert run.code == 0, run.err
    code, out = run_on_terminal(chatapp_home, "search", "-C", "docs", "reset", "router")
    assert code == 0, out
    assert_escaped(out)


def test_templates_show_escapes_a_template_title(chatapp_home: Path) -> None:
    templates = chatapp_home / "config" / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "shady.yaml").write_text(  # YAML's \e escape: a real ESC once loaded
        'name: shady\ntitle: "Shady \\e]0;PWNED\\e\\\\ one"\n'
        "description: a template someone sent you\ntemplate: 'Say {{ input }}'\n",
        encoding="utf-8",
    )
    code, out = run_on_terminal(chatapp_home, "templates", "show", "shady")
    assert code == 0, out
    assert b"\x1b]0;PWNED" not in out and b"\\x1b]0;PWNED" in out, out


def test_a_template_file_with_raw_control_characters_is_refused(chatapp_home: Path) -> None:
    templates = chatapp_home / "config" / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "raw.yaml").write_text(
        "# \x1b]0;PWNED\x1b\\\nname: raw\ntitle: Raw\ntemplate: 'Say {{ input }}'\n"
    )
    run = run_chatapp(chatapp_home, "templates", "show", "raw", "--yaml")
    run.assert_refused(2, "raw.yaml", "not valid YAML")
    assert "\x1b]0;PWNED" not in run.out


def test_safe_for_terminal_keeps_text_newlines_and_tabs() -> None:
    text = "줄 하나\n\tcafé — 100%"
    assert safe_for_terminal(text) == text
    assert safe_for_terminal("a\rb\x00c\u202ed") == "a\\rb\\x00c\\u202ed"


@pytest.mark.slow
def test_the_chat_ui_draws_control_characters_escaped(chatapp_home: Path) -> None:
    """The real chat UI on a pseudo terminal: Textual writes text it is given straight to the
    terminal, so the stored reply, user message, title and source must arrive escaped."""
    from chatapp.storage import ConversationStore

    with ConversationStore(chatapp_home / "data" / "chatapp.db") as store:
        conversation = store.create_conversation(title=f"T {EVIL}")
        user = store.add_message(conversation.id, "user", f"question {EVIL}")
        store.add_message(
            conversation.id,
            "assistant",
            f"answer {EVIL}\n\n```\ncode {EVIL}\n```\n",
            parent_id=user.id,
            sources=[Source(f"doc {EVIL}", f"/docs/x{EVIL}.md", n=1)],
        )
    env = chatapp_env(chatapp_home, COLUMNS="120", LINES="40")
    pid, fd = pty.fork()
    if pid == 0:
        argv = [sys.executable, "-m", "chatapp", "--conversation", str(conversation.id)]
        os.execve(sys.executable, argv, env)
    out = b""
    deadline = time.monotonic() + 90
    try:
        # Until the sources panel (drawn last) has reached the screen.
        while out.count(b"\\x1b]0;PWNED") < 5 and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    assert out.count(b"\\x1b]0;PWNED") >= 5, "title, question, answer, code and source drawn"
    for raw in RAW:
        assert raw not in out, raw


async def test_chat_notices_and_the_status_line_draw_control_characters_escaped(tmp_path) -> None:
    """A reply that fails with a server's message (or a notice quoting a file name) holding
    ESC sequences: the chat's notice and status line show them escaped."""
    from chatapp.config import Settings
    from chatapp.domain import CancelToken, GenerationParams
    from chatapp.engine.fake import FakeBackend
    from chatapp.errors import ChatappError
    from chatapp.storage import ConversationStore
    from chatapp.ui.app import ChatApp
    from chatapp.ui.widgets.chat_view import Notice
    from chatapp.ui.widgets.status import StatusBar

    class FailingBackend(FakeBackend):
        def stream_chat(
            self, messages, params: GenerationParams, cancel: CancelToken | None = None
        ):
            raise ChatappError(f"server said {EVIL}")
            yield  # pragma: no cover

    store = ConversationStore(tmp_path / "chat.db")
    backend = FailingBackend()
    app = ChatApp(Settings(), store, lambda: backend, load_extensions=False)
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(200):
            if app.started and app.context.model.ready.is_set():
                break
            await pilot.pause(0.02)
        app.chat_screen.prompt.set_text("hello")
        await pilot.press("enter")
        for _ in range(200):
            if app.chat_screen.query(Notice):
                break
            await pilot.pause(0.02)
        await pilot.pause(0.1)
        shown = [str(n.render()) for n in app.chat_screen.query(Notice)]
        shown.append(str(app.chat_screen.query_one(StatusBar).state))
        assert any("server said" in text for text in shown[:-1]) and "server said" in shown[-1]
        for text in shown:
            assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
        assert "\\x1b]0;PWNED" in shown[-1]
    store.close()

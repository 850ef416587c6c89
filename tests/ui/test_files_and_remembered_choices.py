"""What the chat writes and remembers: an export is private (0600) and lands where the CLI's
does; settings saved over a config with a bad line keep the rest and say what was dropped; the
chosen collection survives a restart; a reopened chat's header names what the next message
goes through."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
from textual.widgets import Input

from chatapp import paths
from chatapp.config import Settings, load_settings
from chatapp.engine.fake import FakeBackend
from chatapp.session import ChatSession, TemplateCall, TurnRequest, consume
from chatapp.ui.screens.settings import SettingsScreen
from tests.ui.conftest import send, settle, wait_for


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


def header_fields(app) -> str:
    return str(app.chat_screen.query_one("#header-fields").render())


async def test_an_export_is_readable_only_by_its_owner_and_defaults_to_the_working_folder(
    make_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``chatapp history export -o FILE``: 0600, a relative place meaning where chatapp
    was started (not ~/Downloads, a folder other programs sync or scan)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    app = make_app()
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "private words")
        conversation_id = app.chat_screen.conversation_id
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert app.screen.query_one("#directory", Input).value == str(folder)
        await pilot.click("#export")
        exported = folder / f"chatapp-conversation-{conversation_id}.md"
        await wait_for(pilot, exported.exists)
        assert "private words" in exported.read_text(encoding="utf-8")
        assert stat.S_IMODE(exported.stat().st_mode) == 0o600
        assert any(str(exported) in n for n in notifications(app))


async def test_an_export_to_a_folder_that_cannot_be_written_says_so(
    make_app, tmp_path: Path
) -> None:
    from chatapp.ui.clipboard_export import export_conversation

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = make_app()
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "hello")
        assert export_conversation(app, app.store, app.chat_screen.conversation_id, "md",
                                   blocker / "sub") is None  # fmt: skip
        await pilot.pause()
        assert any("cannot be written" in n for n in notifications(app)), notifications(app)


BROKEN_CONFIG = """\
[chat]
system_prompt = "Answer in Korean."

[generation]
temperature = abc
top_k = 30
"""


async def test_saving_settings_over_a_config_with_a_bad_line_keeps_the_rest_and_says_so(
    make_app,
) -> None:
    config = paths.config_file()
    config.write_text(BROKEN_CONFIG, encoding="utf-8")
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        app.screen.query_one("#set-generation-temperature", Input).value = "0.3"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        await pilot.pause()
        told = notifications(app)
        old_file = config.with_name("config.toml.broken")
        assert any("line 5 `temperature = abc`" in n and str(old_file) in n for n in told), told
        assert app.settings.chat.system_prompt == "Answer in Korean.", "it applies at once"
    assert old_file.read_text(encoding="utf-8") == BROKEN_CONFIG
    saved = load_settings()
    assert saved.chat.system_prompt == "Answer in Korean."
    assert saved.generation.temperature == 0.3 and saved.generation.top_k == 30
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


async def test_a_setting_the_model_refuses_is_dropped_by_name(make_app) -> None:
    config = paths.config_file()
    config.write_text('[chat]\nsystem_prompt = "Mine."\n[model]\nn_ctx = "big"\n', "utf-8")
    app = make_app()
    async with app.run_test() as pilot:
        await settle(pilot)
        app.theme = "nord"  # saved like any setting
        await wait_for(pilot, lambda: any("model.n_ctx" in n for n in notifications(app)))
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data == {"chat": {"system_prompt": "Mine."}, "ui": {"theme": "nord"}}


async def test_the_chosen_collection_is_remembered_after_a_restart(settings, store) -> None:
    from chatapp.ui.app import ChatApp
    from chatapp.ui.screens.collections import choose_collection, toggle_documents

    app = ChatApp(settings, store, FakeBackend, load_extensions=False)
    async with app.run_test() as pilot:
        await settle(pilot)
        choose_collection(app.chat_screen, "notes")
        await pilot.pause()
    again = ChatApp(load_settings(), store, FakeBackend, load_extensions=False)
    async with again.run_test() as pilot:
        await settle(pilot)
        choices = again.chat_screen.choices
        assert (choices.collection, choices.documents) == ("notes", True)
        assert "docs notes" in header_fields(again)
        assert again.chat_screen.choices.request("q").collection == "notes"
        toggle_documents(again)  # off, the collection still chosen
        await pilot.pause()
    off = load_settings()
    assert (off.ui.collection, off.ui.documents) == ("notes", False)
    third = ChatApp(off, store, FakeBackend, load_extensions=False)
    async with third.run_test() as pilot:
        await settle(pilot)
        assert third.chat_screen.choices.collection == "notes"
        assert third.chat_screen.choices.request("q").collection is None
        assert "docs" not in header_fields(third)


async def test_a_reopened_chat_whose_last_turn_ran_a_template_continues_as_its_header_says(
    settings: Settings, store
) -> None:
    """The header names the template the next message goes through: a template run (Ctrl+G)
    is one turn, so after reopening, as right after the run, that is the plain chat's."""
    from chatapp.ui.app import ChatApp

    backend = FakeBackend()
    session = ChatSession(backend, store)
    consume(session.send(TurnRequest("hello")))
    consume(session.send(TurnRequest("Some long text.", template=TemplateCall("summarize"))))
    assert store.get_conversation(session.conversation_id).template == "summarize"
    app = ChatApp(settings, store, lambda: backend, conversation_id=session.conversation_id,
                  load_extensions=False)  # fmt: skip
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        shown = header_fields(app)
        assert f"template {settings.chat.template}" in shown and "summarize" not in shown
        await send(pilot, "and a plain follow-up")
        last_user = [m for m in store.thread(session.conversation_id) if m.role == "user"][-1]
        assert last_user.template is None, "the next message went through no template"
        assert last_user.turn["request"].get("template") is None
        assert f"template {settings.chat.template}" in header_fields(app)

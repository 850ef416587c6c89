"""Settings, help, rename, export, theme, the command palette and the extension points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Input, Markdown, TextArea

from chatapp import paths
from chatapp.config import load_settings
from chatapp.domain import Source
from chatapp.engine.fake import FakeBackend
from chatapp.ui.extensions import UIExtensions
from chatapp.ui.screens.help import help_markdown
from chatapp.ui.screens.settings import SettingsScreen
from tests.ui.conftest import send, settle, wait_for


async def test_settings_are_validated_and_saved(make_app) -> None:
    loads: list[int] = []

    def counting_backend():
        loads.append(1)
        return FakeBackend()

    app = make_app()
    app.context.model.factory = counting_backend
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        screen.query_one("#set-generation-temperature", Input).value = "9"
        await pilot.press("ctrl+s")
        await pilot.pause()
        error = str(screen.query_one("#settings-error").render())
        assert "temperature" in error, error
        assert isinstance(app.screen, SettingsScreen), "a bad value keeps the screen open"

        screen.query_one("#set-generation-temperature", Input).value = "0.2"
        screen.query_one("#set-generation-seed", Input).value = "abc"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "not a whole number" in str(screen.query_one("#settings-error").render())

        screen.query_one("#set-generation-seed", Input).value = "42"
        screen.query_one("#set-model-n-ctx", Input).value = "2048"
        screen.query_one("#set-system-prompt", TextArea).load_text("Answer in Korean.")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        await settle(pilot)
    saved = load_settings()
    assert saved.generation.temperature == 0.2
    assert saved.generation.seed == 42
    assert saved.model.n_ctx == 2048
    assert saved.chat.system_prompt == "Answer in Korean."
    assert len(loads) == 2, "a new context size reopens the model"


async def test_help_lists_every_binding(make_app) -> None:
    from chatapp.ui.screens.chat import ChatScreen
    from chatapp.ui.widgets.message import MessageWidget

    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        text = app.screen.query_one(Markdown).source
        for binding in [*ChatScreen.BINDINGS, *MessageWidget.BINDINGS]:
            assert binding.description in text
        assert "Shift+Enter" in text and "Ctrl+P" in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.chat_screen


async def test_rename_and_empty_name(make_app, store) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "hello")
        await pilot.press("f2")
        await pilot.pause()
        field = app.screen.query_one("#value", Input)
        field.value = "   "
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one("#value", Input), "an empty name is refused"
        field.value = "정리된 제목"
        await pilot.press("enter")
        await pilot.pause()
        [conversation] = store.list_conversations()
        assert conversation.title == "정리된 제목"


async def test_export_writes_markdown_and_json(make_app, store, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "export me")
        conversation_id = app.chat_screen.conversation_id
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#directory", Input).value = str(tmp_path)
        await pilot.click("#export")
        md = tmp_path / f"chatapp-conversation-{conversation_id}.md"
        await wait_for(pilot, lambda: "export me" in (md.read_text("utf-8") if md.exists() else ""))

        from chatapp.ui.clipboard_export import export_conversation

        export_conversation(app, store, conversation_id, "json", tmp_path)
        js = tmp_path / f"chatapp-conversation-{conversation_id}.json"
        await wait_for(pilot, lambda: "export me" in (js.read_text("utf-8") if js.exists() else ""))
        assert "export me" in json.dumps(json.loads(js.read_text(encoding="utf-8")))


async def test_theme_choice_is_remembered(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await settle(pilot)
        app.theme = "nord"
        await pilot.pause()
    assert load_settings().ui.theme == "nord"
    assert paths.config_file().exists()


async def test_palette_runs_chat_commands(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await send(pilot, "something")
        assert app.chat_screen.conversation_id is not None
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"new chat")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat_screen.conversation_id is None)
        assert app.screen is app.chat_screen


async def test_extensions_add_commands_send_requests_and_render_sources(settings, store) -> None:
    """An extension's command sends a TurnRequest (here a template turn) through the same
    session as the prompt; its sources renderer draws the panel under a reply with sources."""
    from textual.widgets import Static

    from chatapp.session import TemplateCall, TurnRequest
    from chatapp.ui.app import ChatApp

    extensions = UIExtensions()

    def ask_the_notes(app) -> None:
        passage = "The meeting is on Tuesday."
        call = TemplateCall("qa", {"passage": passage})
        app.send_request(TurnRequest("When is the meeting?", template=call))

    extensions.add_command("Ask the notes", "test command", ask_the_notes, key="ctrl+g")
    extensions.set_sources_renderer(
        lambda message: Static(f"SOURCES: {message.sources[0].path}", classes="test-sources")
    )
    conversation = store.create_conversation("with sources")
    question = store.add_message(conversation.id, "user", "old question")
    store.add_message(conversation.id, "assistant", "old answer", parent_id=question.id,
                      sources=[Source("…", "notes.md", page=2)])  # fmt: skip
    backend = FakeBackend()
    app = ChatApp(settings, store, lambda: backend, extensions=extensions, load_extensions=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.chat_screen.replies_started == 1)
        await settle(pilot)
        sent = backend.last_call.messages[-1].content
        assert "The meeting is on Tuesday." in sent and "When is the meeting?" in sent
        newest = store.latest_conversation()
        reply = store.thread(newest.id)[-1]
        assert reply.template == "qa" and reply.turn["request"]["template"]["name"] == "qa"
        await app.chat_screen.open_conversation(conversation.id)
        await pilot.pause()
        rendered = app.chat_screen.query(".test-sources")
        assert rendered and "notes.md" in str(rendered.first().render())
        app.chat_screen.header.set_field("collection", "notes")
        await pilot.pause()
        assert "collection notes" in str(app.chat_screen.query_one("#header-fields").render())


def test_help_markdown_names_extension_keys() -> None:
    extensions = UIExtensions()
    extensions.add_command("Pick template", "Choose a template", "noop", key="ctrl+g")
    assert "| Ctrl+G | Pick template |" in help_markdown(extensions.commands)


def test_the_pickers_register_their_screens_and_keys() -> None:
    """Plain imports: every picker is there (a broken one would fail here, not vanish)."""
    from chatapp.ui.app import register_pickers

    extensions = UIExtensions()
    register_pickers(extensions)
    assert {"templates", "collections", "models"} <= set(extensions.screens)
    keys = {c.key for c in extensions.commands}
    assert {"ctrl+g", "ctrl+f", "alt+d", "f9"} <= keys
    assert extensions.sources_renderer is not None


@pytest.mark.slow
def test_the_chat_model_gets_every_core(settings) -> None:
    """As in chatapp ask: llama.cpp decodes and evaluates prompts on every core the process may
    use, unless Threads is set."""
    from chatapp.engine.llama_loading import usable_cores
    from chatapp.ui.model_loading import ModelSlot

    slot = ModelSlot()
    try:
        assert slot.load(settings, lambda fraction, text: None) is None
        assert getattr(slot.backend, "n_threads", None) == usable_cores()
    finally:
        slot.close()

"""The template picker: palette entry and key, the variables form, the exact preview, running a
template in the conversation (recorded on the message), and regenerating through it again."""

from __future__ import annotations

from textual.widgets import Select, Static, TextArea

from chatapp.engine.fake import FakeBackend
from chatapp.ui.extensions import UIExtensions
from chatapp.ui.screens.templates import COMMAND_TITLE, TemplatePickerScreen, register
from tests.ui.conftest import settle, wait_for


def extensions() -> UIExtensions:
    ui = UIExtensions()
    register(ui)
    return ui


async def open_picker(pilot) -> TemplatePickerScreen:
    app = pilot.app
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: isinstance(app.screen, TemplatePickerScreen))
    screen = app.screen
    await wait_for(pilot, lambda: bool(screen.templates) and screen.current is not None)
    return screen


async def choose(pilot, screen: TemplatePickerScreen, name: str) -> None:
    from textual.widgets import OptionList

    options = screen.query_one("#template-list", OptionList)
    options.highlighted = options.get_option_index(name)
    await wait_for(pilot, lambda: screen.current is not None and screen.current.name == name)
    await pilot.pause()


def preview_text(screen: TemplatePickerScreen) -> str:
    return screen.query_one("#template-preview", TextArea).text


async def test_palette_entry_and_key_open_the_picker(make_app) -> None:
    app = make_app(extensions=extensions())
    assert COMMAND_TITLE in [c.title for c in app.extensions.commands]
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        await app.action_run_command(COMMAND_TITLE)
        await wait_for(pilot, lambda: isinstance(app.screen, TemplatePickerScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, TemplatePickerScreen))
        screen = await open_picker(pilot)
        assert {"sentiment", "translate", "qa"} <= set(screen.templates)


async def test_form_preview_and_run_records_the_template(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("P")
    app = make_app(backend, extensions=extensions())
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        app.chat_screen.prompt.set_text("연기가 최고, {{ input }} 그대로")
        screen = await open_picker(pilot)
        await choose(pilot, screen, "sentiment-mc")
        assert screen.input_text() == "연기가 최고, {{ input }} 그대로"
        await pilot.press("f5")
        await wait_for(pilot, lambda: preview_text(screen) != "")
        text = preview_text(screen)
        assert text.startswith("<|im_start|>system\nYou answer multiple-choice questions")
        assert "(P) Positive\n(N) Negative" in text
        assert "Review: 연기가 최고, {{ input }} 그대로" in text
        assert text.endswith("<|im_start|>assistant\n")
        assert text.count("<|im_start|>user") == 5  # four examples and the turn
        await pilot.click("#template-run")
        await wait_for(pilot, lambda: not isinstance(app.screen, TemplatePickerScreen))
        await wait_for(pilot, lambda: app.chat_screen.replies_started == 1)
        await settle(pilot)
    call = backend.last_call
    assert call.params.grammar == 'root ::= "P" | "N"\n' and call.params.temperature == 0
    assert call.messages[-1].content.startswith("Review: 연기가 최고, {{ input }} 그대로")
    conversation = store.latest_conversation()
    user, reply = store.thread(conversation.id)[-2:]
    assert (user.content, user.template) == ("연기가 최고, {{ input }} 그대로", "sentiment-mc")
    assert (reply.content, reply.template) == ("P", "sentiment-mc")


async def test_variables_form_and_missing_required_variable(make_app) -> None:
    backend = FakeBackend()
    app = make_app(backend, extensions=extensions())
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        screen = await open_picker(pilot)
        await choose(pilot, screen, "qa")
        screen.query_one("#template-input", TextArea).load_text("When did it open?")
        await pilot.click("#template-run")
        error = screen.query_one("#template-error", Static)
        await wait_for(pilot, lambda: "missing required variable passage" in str(error.render()))
        assert isinstance(app.screen, TemplatePickerScreen) and backend.calls == []

        await choose(pilot, screen, "translate")
        target = screen.query_one("#var-target", Select)
        assert target.value == "English"
        target.value = "Japanese"
        screen.query_one("#template-input", TextArea).load_text("Good morning")
        await pilot.press("f5")
        await wait_for(pilot, lambda: "Translate into Japanese:" in preview_text(screen))


async def test_regenerate_goes_through_the_template_again(make_app) -> None:
    backend = FakeBackend()
    backend.enqueue("bug")
    app = make_app(backend, extensions=extensions())
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        screen = await open_picker(pilot)
        await choose(pilot, screen, "classify")
        screen.query_one("#var-labels", TextArea).load_text("bug, idea")
        screen.query_one("#template-input", TextArea).load_text("it crashes")
        await pilot.click("#template-run")
        await wait_for(pilot, lambda: app.chat_screen.replies_started == 1)
        await settle(pilot)
        first = backend.last_call
        backend.enqueue("idea")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.chat_screen.replies_started == 2)
        await settle(pilot)
    again = backend.last_call
    assert again is not first
    assert again.messages[-1].content == first.messages[-1].content
    assert again.params.grammar == 'root ::= "bug" | "idea"\n'


async def test_regenerate_and_edit_a_template_turn_after_restarting_the_app(tmp_path) -> None:
    """The second app knows nothing of the first: the template and its variables come back from
    the stored turn, so Ctrl+R and an edit go through the template again."""
    from chatapp.config import Settings
    from chatapp.storage import ConversationStore
    from chatapp.ui.app import ChatApp
    from chatapp.ui.screens.dialogs import EditMessageScreen

    path = tmp_path / "chat.db"
    backend = FakeBackend()
    backend.enqueue("bug")
    with ConversationStore(path) as store:
        first_app = ChatApp(Settings(), store, lambda: backend, extensions=extensions(),
                            load_extensions=False)  # fmt: skip
        async with first_app.run_test(size=(120, 44)) as pilot:
            await settle(pilot)
            screen = await open_picker(pilot)
            await choose(pilot, screen, "classify")
            screen.query_one("#var-labels", TextArea).load_text("bug, idea")
            screen.query_one("#template-input", TextArea).load_text("it crashes")
            await pilot.click("#template-run")
            await wait_for(pilot, lambda: first_app.chat_screen.replies_started == 1)
            await settle(pilot)
        conversation_id = store.latest_conversation().id
    first = backend.last_call
    with ConversationStore(path) as store:
        app = ChatApp(Settings(), store, lambda: backend, conversation_id=conversation_id,
                      load_extensions=False)  # fmt: skip
        async with app.run_test(size=(120, 44)) as pilot:
            await settle(pilot)
            backend.enqueue("idea")
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.chat_screen.replies_started == 1)
            await settle(pilot)
            regenerated = backend.last_call
            assert regenerated.messages == first.messages
            assert regenerated.params.grammar == 'root ::= "bug" | "idea"\n'
            await pilot.press("f4")
            await wait_for(pilot, lambda: isinstance(app.screen, EditMessageScreen))
            app.screen.query_one(TextArea).load_text("add dark mode")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: app.chat_screen.replies_started == 2)
            await settle(pilot)
        edited = backend.last_call
        assert "add dark mode" in edited.messages[-1].content
        assert (
            "bug" in edited.messages[-1].content and edited.params.grammar == first.params.grammar
        )
        user = store.thread(conversation_id)[-2]
        assert user.content == "add dark mode" and user.template == "classify"

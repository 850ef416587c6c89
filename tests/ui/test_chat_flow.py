"""The chat screen with a FakeBackend: sending, streaming, stopping, branches, bad input."""

from __future__ import annotations

from chatapp.engine.fake import FakeBackend
from chatapp.storage import ConversationStore
from chatapp.ui.widgets.chat_view import Notice
from chatapp.ui.widgets.message import MessageWidget
from tests.ui.conftest import GatedBackend, add_exchanges, send, settle, wait_for


def shown(app) -> list[tuple[str, str]]:
    return [(w.role, w.content) for w in app.chat_screen.chat_view.message_widgets()]


async def test_a_prompt_streams_a_reply_that_is_stored(make_app, store) -> None:
    backend = FakeBackend(token_delay_s=0.002)
    backend.enqueue("Hello **there**.\n\n```python\nprint('hi')\n```")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "hi")
        [conversation] = store.list_conversations()
        thread = store.thread(conversation.id)
        assert [(m.role, m.content, m.status) for m in thread] == [
            ("user", "hi", "complete"),
            ("assistant", "Hello **there**.\n\n```python\nprint('hi')\n```", "complete"),
        ]
        assert shown(app) == [(m.role, m.content) for m in thread]
        assert app.chat_screen.conversation_id == conversation.id
        assert "reply complete" in str(app.chat_screen.status_bar.state_text)
        # The conversation appears in the sidebar.
        listing = app.chat_screen.sidebar.query_one("#conversations")
        await wait_for(pilot, lambda: listing.option_count == 1)


async def test_an_empty_prompt_sends_nothing(make_app, store) -> None:
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("enter", "space", "enter")
        await pilot.pause(0.1)
        assert backend.calls == []
        assert store.list_conversations() == []


async def test_escape_stops_and_keeps_the_partial_reply(make_app, store) -> None:
    backend = GatedBackend(pause_after=4)
    backend.enqueue("one two three four five six seven eight")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        app.chat_screen.prompt.set_text("count")
        await pilot.press("enter")
        await wait_for(pilot, backend.paused.is_set)
        await pilot.press("escape")
        await settle(pilot)
        [conversation] = store.list_conversations()
        reply = store.thread(conversation.id)[-1]
        assert reply.status == "interrupted"
        assert reply.content.startswith("one two")
        assert "eight" not in reply.content
        widget = app.chat_screen.chat_view.message_widgets()[-1]
        assert widget.message_id == reply.id
        assert "interrupted" in widget.header_text().plain


async def test_regenerate_adds_a_sibling_and_arrows_switch_back(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("first answer")
    backend.enqueue("second answer")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "question")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(backend.calls) == 2)
        await settle(pilot)
        assert shown(app)[-1] == ("assistant", "second answer")
        last = app.chat_screen.chat_view.message_widgets()[-1]
        assert (last.branch.position, last.branch.count) == (2, 2)
        assert "‹ 2/2 ›" in last.header_text().plain

        await pilot.press("alt+left")
        await wait_for(pilot, lambda: shown(app)[-1] == ("assistant", "first answer"))
        conversation_id = app.chat_screen.conversation_id
        assert store.thread(conversation_id)[-1].content == "first answer"
        # On a focused message, → moves to the next branch.
        app.chat_screen.chat_view.message_widgets()[-1].focus()
        await pilot.press("right")
        await wait_for(pilot, lambda: shown(app)[-1] == ("assistant", "second answer"))


async def test_editing_an_earlier_prompt_resends_it_as_a_branch(make_app, store) -> None:
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "first question")
        await send(pilot, "second question")
        first_user = app.chat_screen.chat_view.message_widgets()[0]
        first_user.focus()
        await pilot.press("e")
        await pilot.pause()
        editor = app.screen.query_one("#edit-text")
        editor.load_text("better question")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(backend.calls) == 3)
        await settle(pilot)
        assert shown(app) == [
            ("user", "better question"),
            ("assistant", "You said: better question"),
        ]
        user_widget = app.chat_screen.chat_view.message_widgets()[0]
        assert (user_widget.branch.position, user_widget.branch.count) == (2, 2)
        # The original branch is still stored.
        assert len(store.messages(app.chat_screen.conversation_id)) == 6


async def test_dropped_history_is_announced(make_app, store) -> None:
    backend = FakeBackend(context_size=300)
    conversation_id = add_exchanges(store, 20)
    app = make_app(backend, conversation_id=conversation_id)
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "and now?")
        notices = [str(n.render()) for n in app.chat_screen.query(Notice)]
        assert any("earlier messages left out to fit the model's context" in n for n in notices)


async def test_a_prompt_too_long_for_the_context_is_kept_and_cut_with_a_note(
    make_app, store
) -> None:
    """The user's text is not refused: the budget cuts what the model reads, with the note
    ``run`` gives for a template's input; the stored message is the whole text."""
    backend = FakeBackend(context_size=256)
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        long_text = "word " * 2000
        await send(pilot, long_text)
        notices = [str(n.render()) for n in app.chat_screen.query(Notice)]
        assert any(
            "input cut to its first" in n and f"of {len(long_text)} characters" in n
            for n in notices
        ), notices
        [conversation] = store.list_conversations()
        user, reply = store.thread(conversation.id)
        assert user.content == long_text and reply.status == "complete"
        sent = backend.last_call.messages[-1].content
        assert sent.endswith(" […]") and long_text.startswith(sent.removesuffix(" […]"))
        assert app.chat_screen.prompt.expanded_text() == ""


async def test_a_system_prompt_too_long_for_the_context_is_refused_with_a_message(
    settings, store
) -> None:
    from chatapp.ui.app import ChatApp

    settings.chat.system_prompt = "rule " * 400  # even an empty message cannot fit
    backend = FakeBackend(context_size=256)
    app = ChatApp(settings, store, lambda: backend, load_extensions=False)
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "hello")
        notices = [str(n.render()) for n in app.chat_screen.query(Notice)]
        assert any("prompt too long" in n for n in notices)
        assert store.list_conversations() == []
        assert app.chat_screen.prompt.expanded_text() == "hello", "the prompt is given back"


async def test_a_model_that_fails_to_load_leaves_history_browsable(settings, store) -> None:
    from chatapp.errors import ModelLoadError
    from chatapp.ui.app import ChatApp

    conversation_id = add_exchanges(store, 2)

    def broken():
        raise ModelLoadError("/models/missing.gguf", "no such file")

    app = ChatApp(settings, store, broken, load_extensions=False)
    async with app.run_test() as pilot:
        await settle(pilot)
        status = app.chat_screen.status_bar.state_text
        assert "model failed to load" in status and "missing.gguf" in status
        await app.chat_screen.open_conversation(conversation_id)
        assert len(shown(app)) == 4
        await send(pilot, "anyone there?")
        notices = [str(n.render()) for n in app.chat_screen.query(Notice)]
        assert any("no model loaded" in n for n in notices)


async def test_deleting_the_conversation_being_generated_stops_it_first(make_app, store) -> None:
    backend = GatedBackend(pause_after=3)
    backend.enqueue("a b c d e f g h")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        app.chat_screen.prompt.set_text("go")
        await pilot.press("enter")
        await wait_for(pilot, backend.paused.is_set)
        conversation_id = app.chat_screen.conversation_id
        assert conversation_id is not None
        await pilot.press("f8")
        await pilot.pause()
        await pilot.click("#confirm")
        await settle(pilot)
        assert store.list_conversations() == []
        assert app.chat_screen.conversation_id is None
        assert shown(app) == []


async def test_quitting_mid_reply_keeps_the_partial_reply(make_app, store) -> None:
    backend = GatedBackend(pause_after=3)
    backend.enqueue("a b c d e f g h")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        app.chat_screen.prompt.set_text("go")
        await pilot.press("enter")
        await wait_for(pilot, backend.paused.is_set)
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
    app.close_resources()
    [conversation] = store.list_conversations()
    reply = store.thread(conversation.id)[-1]
    assert reply.role == "assistant" and reply.status == "interrupted"
    assert reply.content.startswith("a b")


async def test_switching_conversations_while_a_reply_streams(make_app, store) -> None:
    backend = GatedBackend(pause_after=2)
    backend.enqueue("x y z w")
    other = add_exchanges(store, 1, title="Other")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        app.chat_screen.prompt.set_text("new one")
        await pilot.press("enter")
        await wait_for(pilot, backend.paused.is_set)
        generating = app.chat_screen.conversation_id
        await app.chat_screen.open_conversation(other)
        assert [r for r, _ in shown(app)] == ["user", "assistant"]
        await app.chat_screen.open_conversation(generating)
        backend.release()
        await settle(pilot)
        assert shown(app)[-1] == ("assistant", "x y z w")


async def test_a_tiny_terminal_folds_the_sidebar_and_still_chats(make_app, store) -> None:
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(pilot)
        assert app.chat_screen.has_class("-sidebar-hidden")
        await send(pilot, "small")
        assert shown(app)[-1] == ("assistant", "You said: small")
        await pilot.press("ctrl+b")
        assert not app.chat_screen.has_class("-sidebar-hidden")
        await pilot.press("ctrl+b")
        assert app.chat_screen.has_class("-sidebar-hidden")


async def test_sidebar_filter_and_selection(make_app, store: ConversationStore) -> None:
    add_exchanges(store, 1, title="Cooking pasta")
    target = add_exchanges(store, 1, title="Trip to Busan")
    app = make_app(FakeBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        listing = app.chat_screen.sidebar.query_one("#conversations")
        await wait_for(pilot, lambda: listing.option_count == 2)
        assert listing.get_option_at_index(0).id == str(target), "newest first"
        await pilot.press("ctrl+l", *"pasta")
        await wait_for(pilot, lambda: listing.option_count == 1)
        assert listing.get_option_at_index(0).id != str(target)
        await pilot.press("ctrl+a", "ctrl+k", *"Busan", "enter", "enter")
        await wait_for(pilot, lambda: app.chat_screen.conversation_id == target)
        assert len(shown(app)) == 2


async def test_copy_message_and_code_block(make_app, store) -> None:
    backend = FakeBackend()
    backend.enqueue("Run:\n\n```sh\nls -la\n```\n\nand\n\n```sh\npwd\n```")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await settle(pilot)
        await send(pilot, "commands?")
        reply: MessageWidget = app.chat_screen.chat_view.message_widgets()[-1]
        reply.focus()
        await pilot.press("k")
        assert app.clipboard == "ls -la\n"
        await pilot.press("k")
        assert app.clipboard == "pwd\n"
        await pilot.press("c")
        assert app.clipboard == reply.content
        await pilot.press("f3")
        assert app.clipboard == reply.content


async def test_a_one_megabyte_paste_is_cut_by_the_budget_not_refused(make_app, store) -> None:
    from textual import events

    backend = FakeBackend(context_size=4096)
    app = make_app(backend)
    big = ("lorem ipsum dolor sit amet " * 40 + "\n") * 950  # ~1 MB
    async with app.run_test() as pilot:
        await settle(pilot)
        app.post_message(events.Paste(big))
        await pilot.pause()
        assert len(app.chat_screen.prompt.text) < 200, "the editor shows a placeholder"
        started = app.chat_screen.replies_started
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat_screen.replies_started > started)
        await settle(pilot)
        notices = [str(n.render()) for n in app.chat_screen.query(Notice)]
        assert any(f"of {len(big)} characters" in n for n in notices), notices
        [conversation] = store.list_conversations()
        user, reply = store.thread(conversation.id)
        assert user.content == big and reply.status == "complete"
        assert backend.count_chat_tokens(backend.last_call.messages) <= 4096

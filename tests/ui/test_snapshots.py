"""Screenshots of the main screens, compared with the accepted ones in ``__snapshots__``
(``make snapshots`` accepts new ones). Everything shown is deterministic: FakeBackend replies,
a paused stream, no live rates."""

from __future__ import annotations

import pytest

from chatapp.engine.fake import FakeBackend
from chatapp.storage import ConversationStore
from tests.ui.conftest import GatedBackend, add_exchanges, settle, wait_for

STREAMED = (
    "Here is a function that adds two numbers:\n\n"
    "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\n"
    "Call it with `add(2, 3)` to get **5**, and then"
)


def korean_conversation(store: ConversationStore) -> int:
    conversation = store.create_conversation("서울 여행 계획", system_prompt="친절하게 답하세요.")
    store.add_message(conversation.id, "user", "서울에서 이틀 동안 무엇을 보면 좋을까요?")
    store.add_message(
        conversation.id,
        "assistant",
        "첫째 날에는 **경복궁**과 북촌 한옥마을을 걸어 보세요.\n\n"
        "| 날짜 | 장소 |\n|---|---|\n| 1일차 | 경복궁, 북촌 |\n| 2일차 | 남산타워, 명동 |\n\n"
        "둘째 날에는 남산타워에서 서울 전경을 즐길 수 있습니다.",
        model={"name": "fake-model"},
    )
    store.add_message(conversation.id, "user", "비가 오면요? (wide: ｆｕｌｌｗｉｄｔｈ)")
    store.add_message(
        conversation.id,
        "assistant",
        "비가 오면 국립중앙박물관이나 코엑스 별마당 도서관을 추천합니다.",
        model={"name": "fake-model"},
    )
    return conversation.id


def test_empty_state(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=settle)


def test_streaming_reply_mid_stream(snap_compare, make_app, store) -> None:
    backend = GatedBackend(pause_after=28)
    backend.enqueue(STREAMED)
    app = make_app(backend)

    async def mid_stream(pilot) -> None:
        await settle(pilot)
        app.chat_screen.prompt.set_text("Write a Python function that adds two numbers.")
        await pilot.press("enter")
        await wait_for(pilot, backend.paused.is_set)
        screen = app.chat_screen
        await wait_for(
            pilot,
            lambda: (
                screen.reply is not None
                and screen.reply.token_count == 28
                and screen.reply.shown == 28
            ),
        )
        # The sidebar's count was read when the reply started, before or after the reply's
        # row was written (durable streaming): read it again now that the row exists.
        screen.refresh_sidebar()
        await pilot.pause(0.2)

    try:
        assert snap_compare(app, terminal_size=(100, 30), run_before=mid_stream)
    finally:
        backend.release()


def test_long_chat(snap_compare, make_app, store) -> None:
    conversation_id = add_exchanges(store, 250)
    add_exchanges(store, 2, title="A shorter chat")
    app = make_app(conversation_id=conversation_id)
    assert snap_compare(app, terminal_size=(100, 30), run_before=settle)


def test_korean_chat(snap_compare, make_app, store) -> None:
    conversation_id = korean_conversation(store)
    app = make_app(conversation_id=conversation_id)
    assert snap_compare(app, terminal_size=(90, 32), run_before=settle)


def test_settings_screen(snap_compare, make_app) -> None:
    async def open_settings(pilot) -> None:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=(100, 34), run_before=open_settings)


def test_help_screen(snap_compare, make_app) -> None:
    async def open_help(pilot) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause(0.3)

    assert snap_compare(make_app(), terminal_size=(100, 34), run_before=open_help)


@pytest.mark.parametrize("size", [(40, 12)])
def test_tiny_terminal(snap_compare, make_app, store, size) -> None:
    backend = FakeBackend()
    backend.enqueue("작은 화면에서도 잘 보입니다.")
    app = make_app(backend)

    async def chat(pilot) -> None:
        await settle(pilot)
        app.chat_screen.prompt.set_text("안녕")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat_screen.replies_started == 1)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=chat)

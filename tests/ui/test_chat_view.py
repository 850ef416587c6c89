"""The chat view on its own: lazy mounting of long conversations, truncation for new branches,
and the message widget's helpers."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult

from chatapp.domain import Source
from chatapp.storage import ConversationStore
from chatapp.ui.branches import branch_positions, switch_branch
from chatapp.ui.widgets.chat_view import PAGE, ChatView, EarlierMessages
from chatapp.ui.widgets.message import Branch, MessageWidget, code_blocks, source_label
from tests.ui.conftest import add_exchanges, wait_for

CSS = Path(__file__).resolve().parents[2] / "chatapp" / "ui" / "chatapp.tcss"


class ViewHost(App[None]):
    CSS_PATH = CSS

    def compose(self) -> ComposeResult:
        yield ChatView(id="chat")


async def test_a_long_conversation_mounts_only_its_last_page(store: ConversationStore) -> None:
    conversation_id = add_exchanges(store, 250)  # 500 messages
    thread = store.thread(conversation_id)
    app = ViewHost()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(ChatView)
        await view.show_thread(thread, {})
        await pilot.pause()
        widgets = view.message_widgets()
        assert len(widgets) == PAGE
        assert widgets[-1].message_id == thread[-1].id
        hidden = len(thread) - PAGE
        assert f"{hidden} earlier messages" in str(view.query_one(EarlierMessages).render())

        await view.load_earlier()
        await pilot.pause()
        widgets = view.message_widgets()
        assert len(widgets) == 2 * PAGE
        assert widgets[0].message_id == thread[-2 * PAGE].id
        assert view.first_shown == len(thread) - 2 * PAGE


async def test_scrolling_to_the_top_mounts_the_page_before(store: ConversationStore) -> None:
    conversation_id = add_exchanges(store, 40, words=30)
    thread = store.thread(conversation_id)
    app = ViewHost()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(ChatView)
        await view.show_thread(thread, {})
        await wait_for(pilot, lambda: view.max_scroll_y > 0)
        before = len(view.message_widgets())
        view.scroll_home(animate=False)
        await pilot.pause(0.2)
        assert len(view.message_widgets()) > before


async def test_truncate_after_keeps_the_branch_point(store: ConversationStore) -> None:
    conversation_id = add_exchanges(store, 3)
    thread = store.thread(conversation_id)
    app = ViewHost()
    async with app.run_test() as pilot:
        view = app.query_one(ChatView)
        await view.show_thread(thread, {})
        await view.truncate_after(thread[2].id)
        await pilot.pause()
        assert [w.message_id for w in view.message_widgets()] == [m.id for m in thread[:3]]
        await view.truncate_after(None)
        assert view.message_widgets() == []


async def test_korean_text_is_kept_exactly(store: ConversationStore) -> None:
    conversation = store.create_conversation("한국어")
    store.add_message(conversation.id, "user", "서울의 인구는 얼마인가요?")
    store.add_message(conversation.id, "assistant", "서울의 인구는 약 **940만 명**입니다.")
    app = ViewHost()
    async with app.run_test() as pilot:
        view = app.query_one(ChatView)
        await view.show_thread(store.thread(conversation.id), {})
        await pilot.pause()
        contents = [w.content for w in view.message_widgets()]
        assert contents == ["서울의 인구는 얼마인가요?", "서울의 인구는 약 **940만 명**입니다."]


def test_branch_positions_count_regenerations_and_edits(store: ConversationStore) -> None:
    conversation = store.create_conversation("branches")
    question = store.add_message(conversation.id, "user", "q")
    first = store.add_message(conversation.id, "assistant", "a1")
    second = store.add_message(conversation.id, "assistant", "a2", parent_id=question.id)
    thread = store.thread(conversation.id)
    positions = branch_positions(store.messages(conversation.id), thread)
    assert positions == {second.id: Branch(2, 2)}

    shown = switch_branch(store, second.id, -1)
    assert shown == first.id
    assert [m.id for m in store.thread(conversation.id)] == [question.id, first.id]
    assert switch_branch(store, first.id, -1) is None


def test_code_blocks_and_source_labels() -> None:
    text = "Intro\n\n```python\nprint(1)\n```\n\nthen\n\n    indented\n"
    assert code_blocks(text) == ["print(1)\n", "indented\n"]
    assert (
        source_label(Source("…", "/docs/notes.md", "notes.md", page=3), 1) == "[1] notes.md (p.3)"
    )
    assert source_label(Source("…", "/docs/a.md"), 2) == "[2] /docs/a.md"
    assert source_label(Source("…", ""), 3) == "[3] source"


async def test_message_header_shows_branch_and_status() -> None:
    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield MessageWidget("assistant", "hi", branch=Branch(2, 3), model_name="m")

    app = Host()
    async with app.run_test() as pilot:
        widget = app.query_one(MessageWidget)
        header = widget.header_text().plain
        assert "m" in header and "‹ 2/3 ›" in header
        widget.status = "interrupted"
        await pilot.pause()
        assert "interrupted" in widget.header_text().plain

"""A thinking model's reply in the chat: its reasoning streams dimmed in a block above the
answer, folds to "Thought for N s" when the answer begins, unfolds with ``t``; it is stored
apart from the answer and the header says whether the next reply thinks (Alt+T switches it,
and the choice is recorded with the reply)."""

from __future__ import annotations

import pytest

from chatapp.engine.fake import FakeBackend
from chatapp.ui.widgets.message import MessageWidget
from chatapp.ui.widgets.reasoning import ReasoningBlock, render_reasoning, thought_for
from tests.ui.conftest import GatedBackend, send, settle, wait_for

THOUGHT = "The user greets me.\nI should greet back briefly.\nKeep it short and friendly."


def _plain(renderable) -> str:
    from rich.console import Console

    console = Console(width=80, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_block_text_folded_live_and_unfolded() -> None:
    assert thought_for(12.4) == "12 s" and thought_for(3.25) == "3.2 s"
    assert thought_for(65) == "1 min 5 s" and thought_for(None) == ""
    folded = _plain(render_reasoning(THOUGHT, 12.0, live=False, expanded=False))
    assert "▸ Thought for 12 s" in folded and "greet back" not in folded
    live = _plain(render_reasoning("a\nb\nc\nd\ne\nf", 2.0, live=True, expanded=False))
    assert "Thinking… 2.0 s" in live
    assert "f" in live.splitlines()[-1] and "a" not in live.split("\n", 1)[1]  # newest lines
    unfolded = _plain(render_reasoning(THOUGHT, None, live=False, expanded=True))
    assert "▾ Thought (14 words)" in unfolded and "greet back briefly" in unfolded
    # Reasoning is model text: an ESC sequence in it is shown, not sent to the terminal.
    hostile = _plain(
        render_reasoning("look \x1b]52;c;aGk=\x07 here", 1.0, live=False, expanded=True)
    )
    assert "\x1b" not in hostile and "\\x1b" in hostile


async def send_until_paused(pilot, backend: GatedBackend, text: str):
    """Send ``text`` and wait until the gated backend pauses; returns the chat screen."""
    await settle(pilot)
    screen = pilot.app.chat_screen
    screen.prompt.set_text(text)
    await pilot.press("enter")
    await wait_for(pilot, backend.paused.is_set)
    return screen


async def test_reasoning_streams_folds_and_unfolds(make_app, store) -> None:
    backend = GatedBackend(pause_after=2, thinks=True)
    backend.enqueue("Hello there, nice to meet you.", reasoning=THOUGHT)
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await send_until_paused(pilot, backend, "hi")
        await wait_for(pilot, lambda: screen.reply is not None and screen.reply.shown == 2)
        await pilot.pause(0.1)
        reply_widget = screen.chat_view.query(MessageWidget).last()
        block = reply_widget.query_one(ReasoningBlock)
        # The answer has begun (2 tokens shown): the block folded to one line.
        assert not block.live and block.text == THOUGHT
        assert "Thought for" in _plain(block.drawing())
        backend.release()
        await settle(pilot)
        stored = store.thread(screen.conversation_id)[-1]
        assert stored.content == "Hello there, nice to meet you."
        assert stored.reasoning == THOUGHT
        assert THOUGHT not in stored.content
        widget = screen.chat_view.query(MessageWidget).last()
        assert widget.is_flat and widget.reasoning == THOUGHT
        assert "Thought for" in _plain(widget.render()) and "greet back" not in _plain(
            widget.render()
        )
        widget.focus()
        await pilot.press("t")
        assert widget.reasoning_expanded and "greet back briefly" in _plain(widget.render())
        await pilot.press("t")
        assert not widget.reasoning_expanded
        # The next turn's history carries the answer only.
        backend.enqueue("Fine.", reasoning="Short.")
        await send(pilot, "how are you?")
        sent = [m.content for m in backend.calls[-1].messages]
        assert "Hello there, nice to meet you." in sent
        assert not any("greet back" in m for m in sent)


async def test_live_reasoning_shows_while_the_model_thinks(make_app, store) -> None:
    class ThinkingGate(GatedBackend):
        """Pauses inside the reasoning (GatedBackend counts answer tokens only)."""

        def stream_chat(self, messages, params, cancel=None):
            from chatapp.domain import ReasoningEvent

            seen = 0
            for event in FakeBackend.stream_chat(self, messages, params, cancel):
                if isinstance(event, ReasoningEvent):
                    seen += 1
                    if seen == self.pause_after + 1:
                        self.paused.set()
                        while not self.gate.wait(0.02):
                            if cancel is not None and cancel.cancelled:
                                break
                yield event

    backend = ThinkingGate(pause_after=12, thinks=True)
    backend.enqueue("Hello!", reasoning=THOUGHT)
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await send_until_paused(pilot, backend, "hi")
        await wait_for(
            pilot, lambda: screen.reply is not None and screen.reply.thoughts_shown == 12
        )
        block = screen.chat_view.query(MessageWidget).last().query_one(ReasoningBlock)
        text = _plain(block.drawing())
        assert block.live and "Thinking…" in text and "I should" in text
        # Esc while it thinks: the partial reasoning is kept with the interrupted reply.
        await pilot.press("escape")
        await settle(pilot)
        stored = store.thread(screen.conversation_id)[-1]
        assert stored.status == "interrupted" and stored.content == ""
        assert stored.reasoning and "greet" in stored.reasoning


async def test_header_shows_thinking_and_the_toggle_reaches_the_reply(make_app, store) -> None:
    backend = FakeBackend(thinks=True)
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = app.chat_screen
        assert screen.header.fields.get("thinking") == "on"
        await pilot.press("alt+t")
        assert screen.header.fields.get("thinking") == "off"
        backend.enqueue("Plain answer.", reasoning="not shown")
        await send(pilot, "hello")
        stored = store.thread(screen.conversation_id)[-1]
        assert stored.content == "Plain answer." and not stored.reasoning
        assert stored.turn["request"]["params"] == {"thinking": "off"}
        assert backend.calls[-1].params.thinking == "off"
        await pilot.press("alt+t")
        assert screen.header.fields.get("thinking") == "on"


async def test_header_has_no_thinking_field_for_a_model_that_does_not_think(make_app) -> None:
    app = make_app(FakeBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.chat_screen.header.fields.get("thinking") is None
        await pilot.press("alt+t")
        await pilot.pause()
        assert app.chat_screen.header.fields.get("thinking") is None


def test_thinking_reply_folded_snapshot(snap_compare, make_app, store) -> None:
    conversation = store.create_conversation("Trip plan")
    store.add_message(conversation.id, "user", "Plan two days in Seoul, briefly.")
    store.add_message(
        conversation.id,
        "assistant",
        "**Day 1:** Gyeongbokgung and Bukchon.\n\n**Day 2:** Namsan Tower and Myeongdong.",
        model={"name": "fake-thinker"},
        reasoning=THOUGHT,
        stats={"reasoning_s": 12.3, "completion_tokens": 40},
    )
    app = make_app(FakeBackend(thinks=True), conversation_id=conversation.id)
    assert snap_compare(app, terminal_size=(90, 20), run_before=settle)


@pytest.mark.slow
async def test_a_real_thinking_gguf_in_the_chat(make_app, store, tmp_path, bundled_gguf) -> None:
    """The tiny thinking GGUF (Qwen3's published template) through real llama.cpp: the chat
    folds its reasoning above the answer, stores it apart, and Alt+T turns it off."""
    from chatapp.config import ModelSettings
    from chatapp.engine.llama_cpp import LlamaCppBackend
    from tests.support.tiny_gguf import THINKING_ANSWER, THINKING_REASONING, write_thinking_gguf

    path = write_thinking_gguf(tmp_path / "tiny-thinking.gguf", tokenizer_from=bundled_gguf)
    backend = LlamaCppBackend(path, ModelSettings(n_ctx=1024), name="tiny-thinking")
    app = make_app(backend)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            screen = app.chat_screen
            assert screen.header.fields.get("thinking") == "on"
            await send(pilot, "Do cats sleep a lot?")
            stored = store.thread(screen.conversation_id)[-1]
            assert stored.content == THINKING_ANSWER and stored.reasoning == THINKING_REASONING
            widget = screen.chat_view.query(MessageWidget).last()
            assert "▸ Thought" in _plain(widget.render())
            assert THINKING_REASONING not in _plain(widget.render())
            await pilot.press("alt+t")
            await send(pilot, "And dogs?")
            stored = store.thread(screen.conversation_id)[-1]
            assert stored.reasoning is None and stored.content.strip().startswith("Hello")
            assert stored.params["thinking"] == "off"
    finally:
        backend.close()

"""The prompt widget on its own: sending, new lines, recalling prompts, very large pastes."""

from __future__ import annotations

from textual import events
from textual.app import App, ComposeResult

from chatapp.ui.widgets.prompt import PASTE_INLINE_LIMIT, PromptInput


class PromptHost(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def compose(self) -> ComposeResult:
        yield PromptInput(id="prompt")

    def on_prompt_input_submitted(self, event: PromptInput.Submitted) -> None:
        self.sent.append(event.text)
        event.prompt.clear_prompt()


async def test_enter_sends_and_shift_enter_or_ctrl_j_add_lines() -> None:
    app = PromptHost()
    async with app.run_test() as pilot:
        await pilot.press(*"one", "shift+enter", *"two", "ctrl+j", *"three", "enter")
        await pilot.pause()
        assert app.sent == ["one\ntwo\nthree"]
        assert app.query_one(PromptInput).text == ""


async def test_empty_or_blank_prompt_sends_nothing() -> None:
    app = PromptHost()
    async with app.run_test() as pilot:
        await pilot.press("enter", "space", "space", "enter", "ctrl+j", "enter")
        await pilot.pause()
        assert app.sent == []


async def test_up_on_first_line_recalls_earlier_prompts_and_down_comes_back() -> None:
    app = PromptHost()
    async with app.run_test() as pilot:
        prompt = app.query_one(PromptInput)
        prompt.remember("first")
        prompt.remember("second\nline two")
        await pilot.press(*"draft")
        await pilot.press("up")
        assert prompt.text == "second\nline two"
        await pilot.press("up")
        assert prompt.text == "first"
        await pilot.press("up")  # nothing older: stays
        assert prompt.text == "first"
        await pilot.press("down")
        assert prompt.text == "second\nline two"
        await pilot.press("down", "down")  # to the last line, then past the newest
        assert prompt.text == "draft"


async def test_up_inside_a_multi_line_prompt_moves_the_cursor() -> None:
    app = PromptHost()
    async with app.run_test() as pilot:
        prompt = app.query_one(PromptInput)
        prompt.remember("old prompt")
        await pilot.press(*"a", "ctrl+j", *"b", "up")
        assert prompt.text == "a\nb"
        assert prompt.cursor_location[0] == 0


async def test_a_huge_paste_is_held_aside_and_sent_whole() -> None:
    app = PromptHost()
    big = ("0123456789abcdef" * 64 + "\n") * 1024  # ~1 MB, 1024 lines
    async with app.run_test() as pilot:
        prompt = app.query_one(PromptInput)
        await pilot.press(*"Summarize: ")
        app.post_message(events.Paste(big))
        await pilot.pause()
        assert len(prompt.text) < 200, "the editor holds a placeholder, not the megabyte"
        assert "pasted text #1" in prompt.text
        await pilot.press("enter")
        await pilot.pause()
        assert app.sent == ["Summarize: " + big]


async def test_a_small_paste_goes_into_the_editor() -> None:
    app = PromptHost()
    async with app.run_test() as pilot:
        prompt = app.query_one(PromptInput)
        text = "x" * (PASTE_INLINE_LIMIT - 1)
        app.post_message(events.Paste(text))
        await pilot.pause()
        assert prompt.text == text

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
        await pilot.pause(0.2)  # nobody presses Enter sooner after a paste
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


class CountingPrompt(PromptInput):
    """The prompt, counting the edits made to its document (each one re-wraps what it
    touches)."""

    edits = 0

    def edit(self, edit):  # type: ignore[no-untyped-def]
        CountingPrompt.edits += 1
        return super().edit(edit)


class CountingHost(PromptHost):
    def compose(self) -> ComposeResult:
        yield CountingPrompt(id="prompt")


def type_keys(app: App[None], text: str) -> None:
    """Queue ``text`` as the key events a terminal without bracketed paste sends (a line
    break arrives as Enter), all at once, as they come from one read of the terminal."""
    from textual.keys import _character_to_key

    for char in text:
        if char == "\n":
            app.post_message(events.Key("enter", "\r"))
        else:
            app.post_message(events.Key(_character_to_key(char), char))


async def until(pilot, condition, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("not reached")


async def test_a_paste_typed_as_keys_is_inserted_at_once_and_held_aside() -> None:
    """40,000 keys (lines included) arrive faster than anyone types: a handful of edits, not
    one per key, and the text goes behind a placeholder like a bracketed paste."""
    app = CountingHost()
    line = "The quick brown fox jumps over the lazy dog, 0123456789 times."
    typed = "\n".join(line for _ in range(40_000 // (len(line) + 1)))
    async with app.run_test() as pilot:
        prompt = app.query_one(PromptInput)
        await pilot.press(*"Read: ")
        CountingPrompt.edits = 0
        type_keys(app, typed)
        await until(pilot, lambda: prompt.expanded_text() == "Read: " + typed)
        assert CountingPrompt.edits < 20, CountingPrompt.edits
        assert len(prompt.text) < 200 and "pasted text #1" in prompt.text
        assert app.sent == [], "Enter inside the burst was a line break, not a send"
        await pilot.press("enter")
        await pilot.pause()
        assert app.sent == ["Read: " + typed]


async def test_a_shorter_typed_burst_goes_into_the_editor_in_a_few_edits() -> None:
    app = CountingHost()
    typed = "word " * 1000
    async with app.run_test() as pilot:
        prompt = app.query_one(PromptInput)
        CountingPrompt.edits = 0
        type_keys(app, typed)
        await until(pilot, lambda: prompt.text == typed)
        assert CountingPrompt.edits < 50, CountingPrompt.edits  # one per key before


async def test_enter_right_after_a_few_typed_keys_still_sends() -> None:
    """An input method commits a syllable and Enter in one write: that Enter sends."""
    app = PromptHost()
    async with app.run_test() as pilot:
        type_keys(app, "안녕하세요\n")
        await until(pilot, lambda: app.sent == ["안녕하세요"], timeout=5)
        type_keys(app, "x" * 40 + "\n")  # a short burst: Enter sends it too
        await until(pilot, lambda: len(app.sent) == 2, timeout=5)
        assert app.sent[1] == "x" * 40


async def test_enter_right_behind_a_joined_paste_sends_unless_more_follows() -> None:
    """The driver hands typed text over as a paste and a closing Enter as a key: that Enter
    sends (``tmux send-keys``, an expect script), but with more of the paste right behind it,
    it was a line break."""
    app = PromptHost()
    async with app.run_test() as pilot:
        prompt = app.query_one(PromptInput)
        app.post_message(events.Paste("Write a story about a dragon."))
        app.post_message(events.Key("enter", "\r"))
        await until(pilot, lambda: app.sent == ["Write a story about a dragon."], timeout=5)
        app.post_message(events.Paste("first part of a long paste"))
        app.post_message(events.Key("enter", "\r"))
        app.post_message(events.Paste("second part"))
        await until(pilot, lambda: prompt.expanded_text().endswith("second part"), timeout=5)
        await pilot.pause(0.3)
        assert len(app.sent) == 1
        assert prompt.expanded_text() == "first part of a long paste\nsecond part"

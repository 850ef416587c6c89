"""A streamed reply's Markdown shows what the finished reply shows, however it was cut into
tokens: blocks drawn once as they complete, long code fences frozen in pieces, Rich drawing from
the tokens of our one parser. (While streaming, blocks are one blank line apart; Rich spaces a
whole reply a little differently around lists and tables, so blank lines are not compared.)"""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.app import App, ComposeResult

from chatapp.engine.fake import split_tokens
from chatapp.ui.widgets.markdown_body import (
    FENCE_PIECE_LINES,
    HEADROOM_LINES,
    MarkdownBody,
    _parser,
    parsed_markdown,
    render_markdown,
)
from tests.ui.conftest import wait_for

CODE = "\n".join(
    f"    value_{i} = compute(x, {i})  # step {i}" for i in range(3 * FENCE_PIECE_LINES)
)
REPLY = (
    "# Plan\n\nFirst **bold** and `code`, then ~~gone~~ text.\n\n"
    "- one\n- two\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    f"```python\ndef run(x):\n{CODE}\n    return x\n```\n\n"
    "Afterwards a paragraph.\n\n"
    f"~~~\n{CODE}\n~~~\n\nThe end, 서울."
)


def plain(renderable: object, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    return [
        "".join(segment.text for segment in line).rstrip()
        for line in console.render_lines(renderable, console.options, pad=False)
    ]


def test_markdown_from_our_parser_draws_like_rich_parsing_it_itself() -> None:
    tokens = _parser().parse(REPLY)
    assert plain(parsed_markdown(REPLY, tokens, True), 70) == plain(
        render_markdown(REPLY, True), 70
    )


class BodyApp(App[None]):
    def compose(self) -> ComposeResult:
        yield MarkdownBody(streaming=True)


def shown(body: MarkdownBody) -> list[str]:
    return [body.render_line(y).text.rstrip() for y in range(body.size.height)]


def written(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip()]


@pytest.mark.parametrize("chunk", [1, 3, 17])
async def test_a_streamed_reply_shows_what_the_finished_one_shows(chunk: int) -> None:
    tokens = split_tokens(REPLY)
    app = BodyApp()
    async with app.run_test(size=(72, 200)) as pilot:
        body = app.query_one(MarkdownBody)
        for i in range(0, len(tokens), chunk):
            await body.append("".join(tokens[i : i + chunk]))
        await wait_for(pilot, lambda: body.settled)  # its height catches up with its text
        assert body.text == REPLY
        streamed = shown(body)
        await body.finish()
        await pilot.pause()
        finished = shown(body)
        # Both are the reply drawn whole by Rich, line for line (code pieces included).
        assert written(finished) == [
            line for line in plain(render_markdown(REPLY, True), body.size.width) if line.strip()
        ]
        assert written(streamed) == written(finished)
        # A code fence streamed in pieces has no seams: the same lines, blank ones included.
        for lines in (streamed, finished):
            first = next(i for i, line in enumerate(lines) if "def run(x):" in line)
            last = next(i for i, line in enumerate(lines) if "return x" in line)
            assert last - first == 3 * FENCE_PIECE_LINES + 1
        assert len(streamed) >= len(written(finished)) > 3 * FENCE_PIECE_LINES


async def test_control_characters_in_a_streamed_reply_are_shown_escaped() -> None:
    app = BodyApp()
    async with app.run_test(size=(72, 20)) as pilot:
        body = app.query_one(MarkdownBody)
        for piece in ["Title", "\x1b]0;pwned\x07", " and\r", " more\n\n", "next"]:
            await body.append(piece)
        await wait_for(pilot, lambda: body.settled)
        text = "\n".join(shown(body))
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
        assert "\\x1b]0;pwned\\x07" in text and "\\r" in text


class CountingBody(MarkdownBody):
    """Counts the layouts it asks for (each one lays out the screen and repaints the view)."""

    layouts = 0

    def refresh(self, *regions, repaint=True, layout=False, recompose=False):  # type: ignore[no-untyped-def]
        if layout:
            self.layouts += 1
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)


class CountingApp(App[None]):
    def compose(self) -> ComposeResult:
        yield CountingBody(streaming=True)


async def test_fast_text_grows_the_reply_in_few_layouts_and_shows_every_line() -> None:
    lines = [
        f"Line {i} of a reply that arrives faster than its height may change." for i in range(40)
    ]
    app = CountingApp()
    async with app.run_test(size=(72, 60)) as pilot:
        body = app.query_one(CountingBody)
        await pilot.pause()
        before = body.layouts
        for line in lines:  # one line per frame, as a fast model's text arrives
            await body.append(line + "\n\n")
        await wait_for(pilot, lambda: body.settled)
        assert body.layouts - before < len(lines) // 4
        assert written(shown(body)) == lines


async def test_new_lines_fill_the_headroom_without_a_layout_and_the_headroom_goes_at_the_end() -> (
    None
):
    app = CountingApp()
    async with app.run_test(size=(72, 60)) as pilot:
        body = app.query_one(CountingBody)
        await body.append("First paragraph.\n\n")
        await wait_for(pilot, lambda: body.settled)
        low, _high = HEADROOM_LINES
        height = body.size.height
        assert height >= 1 + low  # the text and blank room below it
        layouts = body.layouts
        await body.append("Second paragraph.")  # a gap and a line: they fit in the room
        await pilot.pause(0.1)
        assert (body.layouts, body.size.height) == (layouts, height)
        assert written(shown(body)) == ["First paragraph.", "Second paragraph."]
        for i in range(height):  # more lines than the room: the reply grows
            await body.append(f"\n\nMore {i}.")
        await wait_for(pilot, lambda: body.settled)
        assert body.size.height > height and body.layouts > layouts
        await body.finish()
        await pilot.pause()
        assert body.size.height == len(shown(body)) and shown(body)[-1].strip() == f"More {i}."

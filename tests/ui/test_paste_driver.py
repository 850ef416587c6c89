"""The terminal driver's input side: keys a program types (microseconds apart) reach the app as
one paste, keys a person types (or an input method's syllable and Enter) as the keys they are."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
from textual import events
from textual.message import Message

from chatapp.ui.paste_driver import PASTE_RUN_KEYS, PasteRunDriver
from chatapp.ui.widgets.typed_paste import PROGRAM_KEY_GAP_S


class Receiver:
    """Stands in for the Textual app the driver posts to."""

    def __init__(self) -> None:
        self.got: list[Message] = []

    async def _post_message(self, message: Message) -> bool:
        self.got.append(message)
        return True


@pytest.fixture
async def driver() -> AsyncIterator[tuple[PasteRunDriver, Receiver]]:
    # (Textual's driver takes the running event loop when it is made.)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTSTP, signal.SIGCONT)}
    app = Receiver()
    made = PasteRunDriver(app)  # type: ignore[arg-type]
    yield made, app
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def key(char: str) -> events.Key:
    if char == "\n":
        return events.Key("enter", "\r")
    return events.Key(char if char.isalnum() else "space", char)


async def settle() -> None:
    await asyncio.sleep(PROGRAM_KEY_GAP_S * 5)


def shown(got: list[Message]) -> list[str]:
    return [
        f"paste:{m.text}" if isinstance(m, events.Paste) else f"key:{m.key}"  # type: ignore[attr-defined]
        for m in got
    ]


async def test_keys_a_program_types_arrive_as_one_paste(driver) -> None:
    made, app = driver
    text = "first line\nsecond line of the paste\n" * 20
    for char in text:
        made.process_message(key(char))
    await settle()
    assert isinstance(app.got[0], events.Key) and app.got[0].character == text[0]
    paste, enter = app.got[1:]
    assert isinstance(paste, events.Paste) and paste.text == text[1:-1]
    assert isinstance(enter, events.Key) and enter.key == "enter", "a closing Enter stays a key"


async def test_keys_a_person_types_arrive_as_keys(driver) -> None:
    made, app = driver
    for char in "hello\n":
        made.process_message(key(char))
        await asyncio.sleep(PROGRAM_KEY_GAP_S * 3)
    await settle()
    assert shown(app.got) == ["key:h", "key:e", "key:l", "key:l", "key:o", "key:enter"]


async def test_an_input_methods_syllable_and_enter_stay_keys(driver) -> None:
    made, app = driver
    for char in "안녕\n":  # committed in one write, Enter right behind
        made.process_message(key(char))
    await settle()
    assert len(app.got) == 3 < PASTE_RUN_KEYS
    assert all(isinstance(m, events.Key) for m in app.got)
    assert app.got[-1].key == "enter"  # type: ignore[attr-defined]


async def test_other_input_inside_a_run_keeps_its_place(driver) -> None:
    made, app = driver
    for char in "x" * 40:
        made.process_message(key(char))
    made.process_message(events.Key("up", None))
    for char in "y" * 40:
        made.process_message(key(char))
    await settle()
    assert shown(app.got) == ["key:x", "paste:" + "x" * 39, "key:up", "paste:" + "y" * 40]

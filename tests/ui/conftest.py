"""UI test helpers: the app built with FakeBackend, waiting for it to settle, a gated backend
that stops mid-reply (for deterministic streaming snapshots and stop/delete tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from chatapp.config import Settings
from chatapp.domain import CancelToken, ChatMessage, GenerationParams, StreamEvent, TokenEvent
from chatapp.engine.fake import FakeBackend
from chatapp.storage import ConversationStore


@dataclass
class GatedBackend(FakeBackend):
    """A FakeBackend whose replies pause after ``pause_after`` tokens until ``release()`` (or
    until cancelled), so a test can look at, stop or delete a reply mid-stream."""

    pause_after: int = 5
    gate: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.gate.set()

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[StreamEvent]:
        produced = 0
        for event in super().stream_chat(messages, params, cancel):
            if isinstance(event, TokenEvent):
                produced += 1
                if produced == self.pause_after + 1:
                    self.paused.set()
                    while not self.gate.wait(0.02):
                        if cancel is not None and cancel.cancelled:
                            break
            yield event


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds (fails the test after ``timeout``)."""
    steps = int(timeout / 0.02)
    for _ in range(steps):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"condition not reached in {timeout}s: {condition}")


async def settle(pilot) -> None:
    """Wait until startup is done, the model is loaded and no reply is being written."""
    app = pilot.app
    # A blinking cursor would make screenshots differ from run to run.
    app.chat_screen.prompt.cursor_blink = False
    await wait_for(pilot, lambda: app.started and app.context.model.ready.is_set())
    await wait_for(pilot, lambda: app.chat_screen.reply is None)
    await pilot.pause()


async def send(pilot, text: str) -> None:
    """Type a prompt and press Enter, then wait for the reply to be stored."""
    app = pilot.app
    started = app.chat_screen.replies_started
    app.chat_screen.prompt.focus()
    app.chat_screen.prompt.set_text(text)
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.chat_screen.replies_started > started)
    await settle(pilot)


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def make_app(settings: Settings, store: ConversationStore):
    """``make_app(backend=None, **kwargs)`` → a ChatApp on the test store and a FakeBackend."""
    from chatapp.ui.app import ChatApp

    def build(backend: FakeBackend | None = None, **kwargs) -> ChatApp:
        engine = backend if backend is not None else FakeBackend()
        kwargs.setdefault("load_extensions", False)
        return ChatApp(settings, store, lambda: engine, **kwargs)

    return build


def add_exchanges(
    store: ConversationStore, count: int, title: str = "Long chat", words: int = 12
) -> int:
    """A stored conversation of ``count`` user/assistant exchanges; returns its id."""
    conversation = store.create_conversation(title, system_prompt="Be brief.")
    for i in range(count):
        store.add_message(conversation.id, "user", f"Question {i}: " + "word " * words)
        store.add_message(
            conversation.id,
            "assistant",
            f"Answer {i}. " + "text " * words,
            model={"name": "fake-model"},
        )
    return conversation.id

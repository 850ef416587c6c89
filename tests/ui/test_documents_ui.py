"""Answering from documents in the chat UI: the collection picker and toggle, grounded turns
(sources in the prompt, stored with the reply), the sources panel with citation checks, and a
refusal when the documents hold nothing relevant. Real chromadb in tmp dirs, hashing embedder,
FakeBackend."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import OptionList, Static

from chatapp.config import RetrievalSettings, Settings
from chatapp.domain import Source
from chatapp.engine.fake import FakeBackend
from chatapp.prompting.grounded import RULES
from chatapp.ui.extensions import UIExtensions
from chatapp.ui.screens.collections import PICKER_TITLE, CollectionPickerScreen, register
from chatapp.ui.widgets.sources import SourcesPanel
from tests.support.documents import CORPUS, index_corpus
from tests.ui.conftest import send, settle, wait_for


@pytest.fixture
def garden(tmp_path: Path) -> Path:
    return index_corpus(tmp_path / "docs", "garden", CORPUS)


def build_app(store, backend: FakeBackend, settings: Settings | None = None, **options):
    from chatapp.ui.app import ChatApp

    ui = UIExtensions()
    register(ui)
    return ChatApp(settings or Settings(), store, lambda: backend, extensions=ui,
                   load_extensions=False, **options)  # fmt: skip


async def picker_options(pilot) -> OptionList:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, CollectionPickerScreen))
    await wait_for(pilot, lambda: bool(app.screen.query("#collection-list")))
    return app.screen.query_one("#collection-list", OptionList)


async def pick(pilot, name: str) -> None:
    app = pilot.app
    await pilot.press("ctrl+f")
    options = await picker_options(pilot)
    index = options.get_option_index(name)
    options.highlighted = index
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, CollectionPickerScreen))


def header_text(app) -> str:
    return str(app.chat_screen.query_one("#header-fields").render())


async def test_grounded_turn_shows_sources_and_checked_citations(garden, store) -> None:
    backend = FakeBackend()
    backend.enqueue(
        "Tomatoes need at least eight hours of direct sun each day [1]. "
        "The moon is made of green cheese and sings loudly [1]."
    )
    app = build_app(store, backend)
    assert PICKER_TITLE in [c.title for c in app.extensions.commands]
    async with app.run_test(size=(110, 44)) as pilot:
        await settle(pilot)
        await pick(pilot, "garden")
        assert app.chat_screen.choices.documents and "docs garden" in header_text(app)
        await send(pilot, "How much sun do tomatoes need?")
        sent = backend.last_call.messages
        assert sent[0].role == "system" and sent[0].content.endswith(RULES)
        assert sent[-1].content.startswith('<source n="')  # the best source, n="1", comes last
        assert sent[-1].content.rindex("<source n=") == sent[-1].content.index('<source n="1"')
        reply = store.thread(store.latest_conversation().id)[-1]
        assert reply.sources and reply.sources[0].path.endswith("tomatoes.md")
        assert store.thread(reply.conversation_id)[-2].content == "How much sun do tomatoes need?"
        panel = app.chat_screen.query_one(SourcesPanel)
        await wait_for(pilot, lambda: panel.report is not None)
        first = str(panel.query_one("#src-1", Static).render())
        assert "[1]" in first and "tomatoes.md:" in first and "cited" in first
        check = str(panel.query_one("#citation-check", Static).render())
        assert "unsupported" in check and "green cheese" in check
        assert "eight hours" not in check


async def test_a_reply_stored_without_its_check_is_checked_with_the_retrievers_embedder(
    garden, store
) -> None:
    """A reply stored before citation checks were kept with it is checked when shown, with the
    collection's embedder as the chat's document retriever holds it (loaded once, then used by
    the next grounded turn too), not a second copy made by the widget."""
    conversation = store.create_conversation("old grounded chat")
    question = store.add_message(conversation.id, "user", "How much sun do tomatoes need?")
    text = "Tomatoes need at least eight hours of direct sun each day."
    source = Source(text, str(garden / "tomatoes.md"), "tomatoes.md", start_line=1, end_line=3,
                    collection="garden", embedder="hashing", n=1)  # fmt: skip
    store.add_message(conversation.id, "assistant", "Eight hours of sun [1]. Also [4].",
                      parent_id=question.id, sources=[source])  # fmt: skip
    app = build_app(store, FakeBackend(), conversation_id=conversation.id)
    async with app.run_test(size=(110, 44)) as pilot:
        await settle(pilot)
        await wait_for(pilot, lambda: bool(app.chat_screen.query(SourcesPanel)))
        panel = app.chat_screen.query_one(SourcesPanel)
        await wait_for(pilot, lambda: panel.report is not None)
        assert panel.report.citations == [1] and panel.report.invalid_citations == [4]
        retriever = app.context.retriever
        assert retriever is not None and list(retriever._searchers) == ["garden"]


async def test_turning_documents_off_sends_the_plain_prompt(garden, store) -> None:
    backend = FakeBackend()
    app = build_app(store, backend)
    async with app.run_test(size=(110, 44)) as pilot:
        await settle(pilot)
        await pick(pilot, "garden")
        await pilot.press("alt+d")
        await pilot.pause()
        assert not app.chat_screen.choices.documents and "docs" not in header_text(app)
        await send(pilot, "hello there")
        assert backend.last_call.messages[-1].content == "hello there"
        await pilot.press("alt+d")  # back on, same collection
        await pilot.pause()
        choices = app.chat_screen.choices
        assert choices.documents and choices.collection == "garden"


async def test_nothing_relevant_is_refused_without_asking_the_model(garden, store) -> None:
    """The refusal is a stored reply like any other: shown in the chat, kept in the history."""
    backend = FakeBackend()
    strict = Settings(retrieval=RetrievalSettings(min_score=0.99))
    app = build_app(store, backend, strict)
    async with app.run_test(size=(110, 44)) as pilot:
        await settle(pilot)
        await pick(pilot, "garden")
        await send(pilot, "Who painted the Mona Lisa?")
        assert backend.calls == []
        question, refusal = store.thread(store.latest_conversation().id)
        assert question.content == "Who painted the Mona Lisa?"
        assert refusal.kind == "refusal" and "don't contain an answer" in refusal.content
        assert store.latest_conversation().collection == "garden"
        widget = app.chat_screen.chat_view.message_widgets()[-1]
        assert widget.message_id == refusal.id and "don't contain an answer" in widget.content
        assert "documents don't contain" in app.chat_screen.status_bar.state_text


async def test_picker_lists_collections_and_off(garden, store) -> None:
    app = build_app(store, FakeBackend())
    async with app.run_test(size=(110, 44)) as pilot:
        await settle(pilot)
        await app.action_run_command(PICKER_TITLE)
        options = await picker_options(pilot)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels[0].startswith("Off")
        assert any("garden · 4 files" in label and "hashing" in label for label in labels)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CollectionPickerScreen))
        assert app.chat_screen.choices.collection is None

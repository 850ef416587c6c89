"""One request — a template with variables, answered from a collection, after three earlier
turns — reaches the model as the same message list from every front end: the chat UI's template
picker, ``chatapp ask``, ``chatapp run`` and ``chatapp eval`` (which has no history: its list is
the others' without the three earlier exchanges). The refusal path stores the same rows from the
UI and from ``ask``. The FakeBackend records what each front end sent (CHATAPP_FAKE_RECORD)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.config import Settings
from chatapp.engine.fake import FakeBackend
from chatapp.storage import ConversationStore, open_store
from tests.support.documents import CORPUS, index_corpus, run_cli
from tests.ui.conftest import settle, wait_for

QUESTION = "How much sun and water do tomatoes need?"
VARIABLES = {"style": "bullets", "length": "2"}
EARLIER = [
    ("What grows well in shade?", "Lettuce and spinach do."),
    ("And in full sun?", "Tomatoes and peppers."),
    ("When do I plant them?", "After the last frost."),
]


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CHATAPP_FAKE_RECORD", str(path))
    return path


@pytest.fixture
def garden(tmp_path: Path) -> None:
    index_corpus(tmp_path / "docs", "garden", CORPUS)


def conversation_with_history(store: ConversationStore) -> int:
    settings = Settings()
    conversation = store.create_conversation(
        "garden chat", system_prompt=settings.chat.system_prompt
    )
    for question, answer in EARLIER:
        store.add_message(conversation.id, "user", question)
        store.add_message(conversation.id, "assistant", answer)
    return conversation.id


def recorded(path: Path) -> list[list[dict[str, str]]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def var_flags() -> list[str]:
    return [flag for name, value in VARIABLES.items() for flag in ("--var", f"{name}={value}")]


async def run_in_the_ui(conversation_id: int, store: ConversationStore) -> None:
    """Open the conversation, turn documents on, fill the template picker and press Run."""
    from textual.widgets import Input, OptionList, Select, TextArea

    from chatapp.ui.app import ChatApp
    from chatapp.ui.extensions import UIExtensions
    from chatapp.ui.screens import collections, templates

    ui = UIExtensions()
    collections.register(ui)
    templates.register(ui)
    app = ChatApp(Settings(), store, FakeBackend, conversation_id=conversation_id,
                  extensions=ui, load_extensions=False)  # fmt: skip
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        collections.choose_collection(app.chat_screen, "garden")
        app.chat_screen.prompt.set_text(QUESTION)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, templates.TemplatePickerScreen))
        picker = app.screen
        await wait_for(pilot, lambda: bool(picker.templates))
        listing = picker.query_one("#template-list", OptionList)
        listing.highlighted = listing.get_option_index("summarize")
        await wait_for(pilot, lambda: bool(picker.query("#var-style")))
        picker.query_one("#var-style", Select).value = VARIABLES["style"]
        picker.query_one("#var-length", Input).value = VARIABLES["length"]
        assert picker.query_one("#template-input", TextArea).text == QUESTION
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.chat_screen.replies_started == 1)
        await settle(pilot)


async def test_every_front_end_sends_the_same_messages(
    garden, record: Path, capsys, tmp_path: Path
) -> None:
    store = open_store()
    ids = [conversation_with_history(store) for _ in range(3)]

    await run_in_the_ui(ids[0], store)
    code, _, err = run_cli(
        ["ask", "--backend", "fake", "-c", str(ids[1]), "-C", "garden", "-T", "summarize",
         *var_flags(), QUESTION], capsys,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(
        ["run", "summarize", "--backend", "fake", "-c", str(ids[2]), "-C", "garden",
         *var_flags(), QUESTION], capsys,
    )  # fmt: skip
    assert code == 0, err
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"text": QUESTION, "label": "-"}) + "\n", encoding="utf-8")
    code, _, err = run_cli(
        ["eval", "summarize", "--backend", "fake", "-d", str(data), "-C", "garden", "--json",
         *var_flags(), "-o", str(tmp_path / "results.json")], capsys,
    )  # fmt: skip
    assert code == 0, err

    ui, ask, run, evaluation = recorded(record)
    assert ui == ask == run
    history = [m for pair in EARLIER for m in pair]
    assert [m["content"] for m in ui[1:7]] == history  # the three earlier turns
    assert ui[0]["role"] == "system" and "summar" in ui[0]["content"].lower()
    turn = ui[-1]["content"]
    assert '<source n="1"' in turn and QUESTION in turn and "bulleted list" in turn
    assert evaluation == [ui[0], ui[-1]]  # the same turn, without the conversation
    for conversation_id in ids:  # each stored turn remembers its template and collection
        user = store.thread(conversation_id)[-2]
        request = user.turn["request"]
        assert request["template"]["name"] == "summarize"
        # The picker's form also sends the defaults it shows (language: English).
        assert VARIABLES.items() <= request["template"]["variables"].items()
        assert request["collection"] == "garden" and user.content == QUESTION
    store.close()


async def test_a_refusal_is_stored_alike_from_the_ui_and_ask(
    garden, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CHATAPP_RETRIEVAL__MIN_SCORE", "0.99")
    from chatapp.config import load_settings
    from chatapp.ui.app import ChatApp
    from chatapp.ui.screens import collections

    store = open_store()
    backend = FakeBackend()
    app = ChatApp(load_settings(), store, lambda: backend, load_extensions=False)
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        collections.choose_collection(app.chat_screen, "garden")
        app.chat_screen.prompt.set_text("Who painted the Mona Lisa?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat_screen.replies_started == 1)
        await settle(pilot)
    code, out, err = run_cli(
        ["ask", "--backend", "fake", "-C", "garden", "Who painted the Mona Lisa?"], capsys
    )
    assert code == 0, err
    assert backend.calls == []
    first, second = sorted(c.id for c in store.list_conversations())

    def rows(conversation_id: int) -> list[tuple]:
        return [
            (m.role, m.content, m.status, m.kind, (m.turn or {}).get("request"), m.sources)
            for m in store.thread(conversation_id)
        ]

    assert rows(first) == rows(second)
    assert rows(first)[-1][3] == "refusal" and "don't contain an answer" in out
    assert store.get_conversation(first).collection == store.get_conversation(second).collection
    store.close()

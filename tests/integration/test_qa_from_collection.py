"""``chatapp run qa -C COLLECTION``: the passage comes from the collection.

It used to fail with "missing required variable passage". A template that answers with a span of
a passage, run with a collection and no passage, gets the sources found as its passage — through
the session's one pipeline (retrieval, the one budget, the span check) — from ``run`` and from
``ask -T``. Real chromadb with the deterministic hashing embedder; FakeBackend as the model.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from chatapp.engine import factory
from chatapp.engine.fake import FakeBackend
from chatapp.prompting.grounded import RULES
from chatapp.session.preparation import SOURCES_PLACEHOLDER
from tests.support.documents import CORPUS, index_corpus, run_cli

QUESTION = "How often should I water tomatoes?"


@pytest.fixture
def garden(tmp_path: Path) -> None:
    index_corpus(tmp_path / "docs", "garden", CORPUS)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    backend = FakeBackend()
    monkeypatch.setattr(factory, "create_backend", lambda settings, **kw: backend)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return backend


def _sent_passage(fake: FakeBackend) -> str:
    user = fake.last_call.messages[-1].content
    assert user.startswith("Passage: ") and user.rstrip().endswith(
        f"Question: {QUESTION}\nAnswer (copied from the passage):"
    )
    return user


def test_run_qa_answers_from_the_collection(garden, fake: FakeBackend, capsys) -> None:
    fake.enqueue("twice a week")
    code, out, err = run_cli(["run", "qa", "-C", "garden", "--json", QUESTION], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["valid"] is True and result["parsed"] == "twice a week"
    assert result["sources"][0]["display_path"] == "garden/tomatoes.md"
    user = _sent_passage(fake)
    assert "Water tomatoes deeply twice a week" in user
    assert '<source n="1" path="garden/tomatoes.md"' in user  # documents stay fenced data
    assert SOURCES_PLACEHOLDER not in user
    system = fake.last_call.messages[0].content
    assert system.startswith("You answer questions about a passage") and RULES not in system


def test_an_answer_not_in_the_sources_is_not_valid(garden, fake: FakeBackend, capsys) -> None:
    fake.enqueue("every day at noon")
    code, out, _ = run_cli(["run", "qa", "-C", "garden", "--json", QUESTION], capsys)
    result = json.loads(out)
    assert code == 0 and result["valid"] is False and "not a span" in result["error"]


def test_ask_with_the_qa_template_and_a_collection(garden, fake: FakeBackend, capsys) -> None:
    fake.enqueue("twice a week")
    code, out, err = run_cli(["ask", "-T", "qa", "-C", "garden", QUESTION], capsys)
    assert code == 0, err
    assert out.strip() == "twice a week" and "Water tomatoes deeply" in _sent_passage(fake)


def test_a_passage_given_by_hand_is_still_used(garden, fake: FakeBackend, capsys) -> None:
    fake.enqueue("at noon")
    argv = ["run", "qa", "-C", "garden", "--var", "passage=Water them at noon.", QUESTION]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "Passage: Water them at noon." in fake.last_call.messages[-1].content


def test_without_a_collection_the_passage_is_still_required(fake: FakeBackend, capsys) -> None:
    code, _, err = run_cli(["run", "qa", QUESTION], capsys)
    assert code == 2 and "missing required variable passage" in err

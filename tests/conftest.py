"""Shared fixtures: every test gets its own CHATAPP_HOME, offline hub settings, and fakes.

Real-model fixtures (the bundled GGUF through llama.cpp, MiniLM through sentence-transformers)
are session-scoped so each loads once per run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def chatapp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes its config, history and collections under its own tmp dir."""
    home = tmp_path / "chatapp-home"
    monkeypatch.setenv("CHATAPP_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("CHATAPP_") and name != "CHATAPP_HOME":
            monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def fake_backend():
    from chatapp.engine.fake import FakeBackend

    return FakeBackend()


@pytest.fixture
def store(tmp_path: Path) -> Iterator:
    from chatapp.storage import ConversationStore

    with ConversationStore(tmp_path / "test.db") as s:
        yield s


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    from chatapp.models.bundled import bundled_chat_model

    return bundled_chat_model()


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2 through real sentence-transformers (loaded once)."""
    from chatapp.embedding.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("bundled")


@pytest.fixture
def hashing_embedder():
    from chatapp.embedding.embedder import HashingEmbedder

    return HashingEmbedder()

"""create_backend picks and opens the backend the settings ask for; bad models fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.config import load_settings
from chatapp.engine.factory import create_backend, generation_params
from chatapp.engine.fake import FakeBackend
from chatapp.errors import ModelLoadError, ModelNotFoundError, UsageError


def test_fake_backend() -> None:
    backend = create_backend(load_settings(), backend="fake")
    assert isinstance(backend, FakeBackend)


def test_unknown_backend_kind() -> None:
    with pytest.raises(UsageError, match=r"^backend 'nope': unknown \(choose one of llama_cpp"):
        create_backend(load_settings(), backend="nope")


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ModelLoadError) as caught:
        create_backend(load_settings(), model=str(missing))
    assert str(caught.value) == f"model {missing}: no such file"


def test_model_path_that_is_not_a_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(ModelLoadError, match=r"not a GGUF file \(bad magic\)$"):
        create_backend(load_settings(), model=str(fake))


def test_unknown_model_name() -> None:
    with pytest.raises(ModelNotFoundError):
        create_backend(load_settings(), model="no-such-model-xyz")


def test_generation_params_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATAPP_GENERATION__TEMPERATURE", "0.2")
    monkeypatch.setenv("CHATAPP_GENERATION__SEED", "42")
    params = generation_params(load_settings({"generation": {"max_tokens": 99}}))
    assert (params.temperature, params.seed, params.max_tokens) == (0.2, 42, 99)
    assert params.top_k == 40 and params.stop == [] and params.grammar is None

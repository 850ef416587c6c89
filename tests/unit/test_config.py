"""Settings: defaults < config.toml < CHATAPP_* < CLI flags; clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp import paths
from chatapp.config import load_settings, save_settings
from chatapp.errors import ConfigError


def test_defaults() -> None:
    s = load_settings()
    assert s.model.name == "smollm2-135m" and s.model.n_ctx == 4096
    assert s.backend.kind == "llama_cpp"


def test_home_relocates_every_dir(chatapp_home: Path) -> None:
    for name, path in paths.all_dirs().items():
        assert str(path).startswith(str(chatapp_home)), name
        assert path.is_dir()


def test_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    paths.config_file().write_text("[generation]\ntemperature = 0.2\ntop_k = 7\n")
    monkeypatch.setenv("CHATAPP_GENERATION__TOP_K", "9")
    s = load_settings({"generation": {"temperature": 1.5}})
    assert s.generation.temperature == 1.5 and s.generation.top_k == 9


def test_save_then_load_roundtrip() -> None:
    s = load_settings()
    s.chat.system_prompt = "답변은 한국어로"
    s.ui.theme = "nord"
    save_settings(s)
    again = load_settings()
    assert again.chat.system_prompt == "답변은 한국어로" and again.ui.theme == "nord"


def test_invalid_toml_names_the_file() -> None:
    paths.config_file().write_text("[model\nname = 1")
    with pytest.raises(ConfigError, match=r"config\.toml: not valid TOML"):
        load_settings()


def test_unknown_key_names_the_field() -> None:
    paths.config_file().write_text("[generation]\ntemprature = 0.1\n")
    with pytest.raises(ConfigError, match=r"generation\.temprature"):
        load_settings()


def test_wrong_type_names_the_field() -> None:
    paths.config_file().write_text("[model]\nn_ctx = 'big'\n")
    with pytest.raises(ConfigError, match=r"model\.n_ctx"):
        load_settings()


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATAPP_MODEL__N_CTX", "tiny")
    with pytest.raises(ConfigError, match="CHATAPP_MODEL__N_CTX"):
        load_settings()

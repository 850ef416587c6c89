"""API keys stay out of config.toml and off the screen; saving settings writes only what the
user changed, never a default, a CHATAPP_* variable or a command-line flag such as --api-key."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from chatapp import paths
from chatapp.config import load_settings, save_settings
from tests.security.conftest import chatapp_env, run_chatapp

KEY = "sk-test-5f1d2c9a7b"


def file_tables(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def test_config_set_keeps_the_api_key_out_of_config_toml(home: Path) -> None:
    run = run_chatapp(home, "config", "set", "backend.api_key", KEY)
    assert run.code == 0, run.err
    assert KEY not in run.out and "********" in run.out
    config, keys = home / "config" / "config.toml", home / "config" / "keys.toml"
    assert KEY not in config.read_text(encoding="utf-8") if config.exists() else True
    assert file_tables(keys) == {"backend": {"api_key": KEY}}
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert load_settings().backend.api_key == KEY  # and it is still the key in force


def test_config_show_masks_the_key_in_text_and_json(home: Path) -> None:
    run_chatapp(home, "config", "set", "backend.api_key", KEY)
    shown = run_chatapp(home, "config", "show")
    as_json = run_chatapp(home, "config", "show", "--json")
    assert shown.code == 0 and as_json.code == 0
    assert KEY not in shown.out and KEY not in as_json.out
    assert 'api_key = "********"' in shown.out
    assert json.loads(as_json.out)["backend"]["api_key"] == "********"


def test_the_key_can_come_from_stdin_instead_of_the_command_line(home: Path) -> None:
    run = run_chatapp(home, "config", "set", "backend.api_key", "-", stdin=f"{KEY}\n".encode())
    assert run.code == 0, run.err
    assert file_tables(home / "config" / "keys.toml")["backend"]["api_key"] == KEY


def test_empty_stdin_for_the_key_is_refused(home: Path) -> None:
    run = run_chatapp(home, "config", "set", "backend.api_key", "-", stdin=b"")
    run.assert_refused(2, "backend.api_key", "nothing on stdin")
    assert not (home / "config" / "keys.toml").exists()


def test_config_set_writes_only_that_setting(home: Path) -> None:
    env = chatapp_env(home, CHATAPP_GENERATION__TOP_K="7")
    run = run_chatapp(home, "config", "set", "generation.temperature", "0.3", env=env)
    assert run.code == 0, run.err
    # Not the defaults, not the environment's top_k, not the fake backend from the environment.
    assert file_tables(paths.config_file()) == {"generation": {"temperature": 0.3}}


def test_ui_save_never_writes_flags_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the chat UI does: settings from flags (``chatapp --api-key … --model …``) and the
    environment, the user changes the theme, ``save_settings`` is called."""
    monkeypatch.setenv("CHATAPP_GENERATION__MAX_TOKENS", "64")
    settings = load_settings(
        {"backend": {"api_key": "sk-from-flag", "kind": "openai"}, "model": {"name": "big"}}
    )
    updated = settings.model_copy(deep=True)  # the settings screen edits a copy
    updated.ui.theme = "nord"
    save_settings(updated)
    assert file_tables(paths.config_file()) == {"ui": {"theme": "nord"}}
    assert not paths.keys_file().exists()


def test_a_key_an_older_version_left_in_config_toml_moves_out(home: Path) -> None:
    paths.config_file().write_text(f'[backend]\napi_key = "{KEY}"\nkind = "openai"\n')
    run = run_chatapp(home, "config", "set", "ui.theme", "nord")
    assert run.code == 0, run.err
    assert file_tables(paths.config_file()) == {
        "backend": {"kind": "openai"},
        "ui": {"theme": "nord"},
    }
    assert file_tables(paths.keys_file()) == {"backend": {"api_key": KEY}}
    assert load_settings().backend.api_key == KEY


def test_saving_over_a_broken_config_keeps_the_old_file() -> None:
    from chatapp.config import Settings

    broken = "[ui\ntheme = 'nord'\n"
    paths.config_file().write_text(broken)
    settings = Settings.model_construct()  # what the UI falls back to when the file is broken
    settings.ui.theme = "gruvbox"
    save_settings(settings)
    assert paths.config_file().with_name("config.toml.broken").read_text() == broken
    assert file_tables(paths.config_file()) == {"ui": {"theme": "gruvbox"}}


@pytest.mark.slow
def test_serve_link_token_is_not_written_anywhere(home: Path) -> None:
    """The access token of ``chatapp serve`` lives only in the running server and the link."""
    from tests.support.served_chat import serve_chat

    with serve_chat(home) as served:
        token = served.token
    for root, _dirs, files in os.walk(home):
        for name in files:
            assert token.encode() not in (Path(root) / name).read_bytes(), name

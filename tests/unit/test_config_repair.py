"""Saving settings over a config.toml with a bad line or key keeps every other setting, keeps
the old file beside it and names what was dropped (chatapp.config_repair)."""

from __future__ import annotations

import stat
import tomllib

from chatapp import paths
from chatapp.config import Settings, load_settings, repair_settings_files, save_settings
from chatapp.config_repair import salvage_toml


def test_lines_that_are_not_toml_are_dropped_and_the_rest_kept() -> None:
    text = '[chat]\nsystem_prompt = "Mine."\n[generation]\ntemperature = abc\ntop_k = 30\n[ui\n'
    data, dropped = salvage_toml(text)
    assert data == {"chat": {"system_prompt": "Mine."}, "generation": {"top_k": 30}}
    assert dropped == ["line 4 `temperature = abc`", "line 6 `[ui`"]


def test_an_unclosed_string_at_the_end_is_dropped_too() -> None:
    data, dropped = salvage_toml('[chat]\ntemplate = "chat"\nsystem_prompt = """never closed\n')
    assert data == {"chat": {"template": "chat"}}
    assert dropped == ['line 3 `system_prompt = """never closed`']


def test_a_file_that_is_not_toml_at_all_keeps_nothing_and_says_so() -> None:
    data, dropped = salvage_toml("\x00\x01 garbage = = =\n" * 60)
    assert data == {} and dropped[-1] == "everything else (not TOML)"


def test_saving_keeps_the_good_keys_and_reports_the_bad_ones() -> None:
    config = paths.config_file()
    original = (
        '[chat]\nsystem_prompt = "Answer in Korean."\n'
        '[model]\nn_ctx = "big"\nno_such_field = 1\n'
        "[generation]\ntemperature = abc\n[bogus]\nx = 1\n"
    )
    config.write_text(original, encoding="utf-8")
    [repair] = repair_settings_files()
    assert repair.old_file == config.with_name("config.toml.broken")
    assert repair.old_file.read_text(encoding="utf-8") == original
    message = repair.message()
    for named in ("line 7 `temperature = abc`", "model.n_ctx", "model.no_such_field", "bogus"):
        assert named in message, message
    assert "Answer in Korean." not in message
    assert repair_settings_files() == [], "the repaired file is fine"
    settings = Settings()
    settings.generation.temperature = 0.3
    save_settings(settings)
    loaded = load_settings()
    assert loaded.chat.system_prompt == "Answer in Korean." and loaded.generation.temperature == 0.3
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_an_earlier_kept_file_is_never_overwritten() -> None:
    config = paths.config_file()
    config.write_text("first = [\n", encoding="utf-8")
    repair_settings_files()
    config.write_text("second = [\n", encoding="utf-8")
    [repair] = repair_settings_files()
    assert repair.old_file == config.with_name("config.toml.broken.1")
    assert config.with_name("config.toml.broken").read_text() == "first = [\n"
    assert tomllib.loads(config.read_text(encoding="utf-8")) == {}

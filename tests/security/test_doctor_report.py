"""``chatapp doctor`` says what chatapp keeps that others could read (the README promises 0700
folders and 0600 files) and how much the warm-resume cache holds, before anything tightens
them, with the real CLI on a real home."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.security.conftest import run_chatapp


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_doctor_reports_open_modes_and_the_cache_size(home: Path) -> None:
    config = home / "config" / "config.toml"
    config.write_text('[ui]\ntheme = "nord"\n')
    config.chmod(0o644)
    states = home / "cache" / "kv-states" / ("d" * 64 + "-2048")
    for folder in (states.parent.parent, states.parent, states):
        folder.mkdir(mode=0o700, exist_ok=True)
    states.chmod(0o755)
    state = states / f"{'0' * 32}.kvstate"
    state.write_bytes(b"\0" * 123_456)
    state.chmod(0o600)

    run = run_chatapp(home, "doctor", "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    listed = report["private_files"]["too_open"]
    assert f"644 {config}" in listed and f"755 {states}" in listed, listed
    assert report["private_files"]["count"] == 2, "\n".join(listed)
    assert report["kv_cache"]["bytes"] == 123_456 and report["kv_cache"]["states"] == 1

    config.chmod(0o644)  # the first run's settings load tightened it, as any command does
    text = run_chatapp(home, "doctor")
    assert text.code == 0, text.err
    assert "readable by others" in text.out and str(config) in text.out
    assert "1 saved conversation state(s), 120.6 KiB" in text.out


def test_doctor_says_a_private_home_is_private(home: Path) -> None:
    run = run_chatapp(home, "doctor", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["private_files"] == {"too_open": [], "count": 0}

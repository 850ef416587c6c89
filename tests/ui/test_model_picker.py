"""The model picker (F9): list with fit hints, download with progress from a local hub, switch
the chat's model without restarting, stop a download."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, ProgressBar

from chatapp import paths
from chatapp.config import load_settings
from chatapp.engine.fake import FakeBackend
from chatapp.models.registry import find_installed
from chatapp.ui.extensions import UIExtensions
from chatapp.ui.screens import models as picker
from tests.support.hub_server import HubServer
from tests.support.tiny_gguf import write_tiny_gguf
from tests.ui.conftest import settle, wait_for

CATALOG_REPO = "bartowski/SmolLM2-360M-Instruct-GGUF"
CATALOG_FILE = "SmolLM2-360M-Instruct-Q4_K_M.gguf"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    content = write_tiny_gguf(tmp_path / "g.gguf").read_bytes() + os.urandom(3 * 1024 * 1024)
    with HubServer() as server:
        server.add_file(CATALOG_REPO, CATALOG_FILE, content)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


@pytest.fixture
def picker_app(make_app):
    loads: list[int] = []

    def backend() -> FakeBackend:
        loads.append(1)
        return FakeBackend()

    extensions = UIExtensions()
    picker.register(extensions)
    app = make_app(extensions=extensions)
    app.context.model.factory = backend
    app.loads = loads
    return app


async def _open(pilot) -> picker.ModelPickerScreen:
    await settle(pilot)
    await pilot.press("f9")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, picker.ModelPickerScreen))
    screen = pilot.app.screen
    await wait_for(pilot, lambda: bool(screen.rows))
    return screen


async def test_picker_lists_installed_and_catalog_with_fit_hints(picker_app) -> None:
    async with picker_app.run_test(size=(110, 40)) as pilot:
        screen = await _open(pilot)
        table = screen.query_one("#models-table", DataTable)
        first = table.get_row_at(0)
        assert first[0] == "*" and first[1] == "smollm2-135m" and first[2] == "bundled"
        assert screen.rows["exaone-3.5-2.4b-instruct"].korean
        assert screen.rows["qwen2.5-7b-instruct"].status == "available"
        assert all(row.fit in ("fits", "tight", "too big") for row in screen.rows.values())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(pilot.app.screen, picker.ModelPickerScreen))


async def test_download_then_switch_without_restarting(picker_app, hub: HubServer) -> None:
    async with picker_app.run_test(size=(110, 40)) as pilot:
        screen = await _open(pilot)
        screen.select("smollm2-360m-instruct")
        await pilot.press("enter")  # not installed: download, verify, then use it
        await wait_for(pilot, lambda: picker_app.settings.model.name == "smollm2-360m-instruct")
        await wait_for(pilot, lambda: len(picker_app.loads) == 2)  # the engine reopened
        await settle(pilot)
        assert not isinstance(picker_app.screen, picker.ModelPickerScreen)
    model = find_installed("smollm2-360m-instruct")
    assert model is not None and model.source == "downloaded" and not model.missing
    assert load_settings().model.name == "smollm2-360m-instruct"
    assert hub.bytes_served == model.path.stat().st_size


async def test_stopping_a_download_keeps_the_partial_file(picker_app, hub: HubServer) -> None:
    hub.rate_limit = 512 * 1024  # slow enough to stop it half-way
    async with picker_app.run_test(size=(110, 40)) as pilot:
        screen = await _open(pilot)
        screen.select("smollm2-360m-instruct")
        await pilot.press("d")
        bar = screen.query_one("#models-progress", ProgressBar)
        await wait_for(pilot, lambda: (bar.progress or 0) > 0)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.downloading is None)
        assert picker_app.settings.model.name == "smollm2-135m"
    assert find_installed("smollm2-360m-instruct") is None
    partials = list((paths.models_dir() / ".partial").glob("*.part"))
    assert len(partials) == 1 and 0 < partials[0].stat().st_size < 3 * 1024 * 1024

"""`chatapp models pull` against a local server speaking the Hugging Face Hub's file API.

The server (tests/support/hub_server.py) publishes a copy of the bundled GGUF and a few small
files; HF_ENDPOINT points huggingface-hub at it. Nothing here touches the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp import paths
from chatapp.errors import BackendUnavailableError, ModelNotFoundError
from chatapp.models.download import ChecksumError, DiskSpaceError, pull_model
from chatapp.models.hub import HubError
from chatapp.models.registry import find_installed, installed_models, resolve_model_path
from tests.support.hub_server import HubServer
from tests.support.tiny_gguf import write_tiny_gguf
from tests.unit.test_registry import assert_one_line_error, run_cli


def assert_ends_with_error(err: str, *fragments: str) -> None:
    """A pull may print what it is downloading first; the error is still one last line."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error: ") for line in lines) == 1
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


REAL = "test-org/SmolLM2-135M-Instruct-GGUF"
REAL_FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"
SMALL = "test-org/Small-GGUF"


def _small_gguf(tmp: Path, name: str, megabytes: int) -> bytes:
    header = write_tiny_gguf(tmp / name, name=name).read_bytes()
    return header + os.urandom(megabytes * 1024 * 1024)


@pytest.fixture(scope="module")
def hub(bundled_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    tmp = tmp_path_factory.mktemp("hub")
    server = HubServer()
    server.add_file(REAL, REAL_FILE, bundled_gguf)
    server.add_file(REAL, "README.md", b"# SmolLM2 135M\n", lfs=False)
    small = _small_gguf(tmp, "small", 4)
    server.add_file(SMALL, "Small-Q4_K_M.gguf", small)
    server.add_file(SMALL, "Small-Q8_0.gguf", _small_gguf(tmp, "small8", 2))
    # Served bytes differ by one flipped byte from what the listing's sha256 describes.
    intact = _small_gguf(tmp, "intact", 2)
    corrupt = bytearray(intact)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.add_file(
        "test-org/Corrupt-GGUF",
        "Corrupt-Q4_K_M.gguf",
        bytes(corrupt),
        claimed_sha256=hashlib.sha256(intact).hexdigest(),
    )
    server.add_file("test-org/safetensors-only", "model.safetensors", b"\0" * 1024)
    server.add_file("test-org/safetensors-only", "config.json", b"{}", lfs=False)
    # A catalog model's repo, so `pull NAME` resolves through the catalog to this server.
    server.add_file(
        "bartowski/SmolLM2-360M-Instruct-GGUF",
        "SmolLM2-360M-Instruct-Q4_K_M.gguf",
        _small_gguf(tmp, "smol360", 1),
    )
    with server:
        yield server


@pytest.fixture(autouse=True)
def endpoint(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub.reset_counters()
    hub.drop_next_download(after_bytes=0, then_fail=0)
    hub._drop_after = None
    return hub


def _cdn_gets(hub: HubServer) -> list[dict]:
    return [r for r in hub.requests if r["server"] == "cdn" and r["method"] == "GET"]


def _partials() -> list[Path]:
    return sorted((paths.models_dir() / ".partial").glob("*.part"))


def test_full_download_of_a_real_gguf_is_verified_installed_and_usable(
    hub: HubServer, bundled_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", "hf_secret_test_token")
    seen: list[tuple[int, int]] = []
    model = pull_model(REAL, on_progress=lambda done, total: seen.append((done, total)))
    size = bundled_gguf.stat().st_size
    assert model.source == "downloaded" and not model.missing
    assert model.path.is_relative_to(paths.models_dir())
    assert model.sha256 == hashlib.sha256(bundled_gguf.read_bytes()).hexdigest()
    assert hashlib.sha256(model.path.read_bytes()).hexdigest() == model.sha256
    assert resolve_model_path(model.name) == model.path
    assert resolve_model_path(f"{REAL}:Q4_1") == model.path
    assert seen[-1] == (size, size) and len(seen) > 2
    assert hub.bytes_served == size and _partials() == []
    # The token goes to the hub API, never to the CDN's signed URL.
    api = [r for r in hub.requests if r["server"] == "hub" and r["path"].startswith("/api/models")]
    assert api and all(r["authorization"] == "Bearer hf_secret_test_token" for r in api)
    assert all(r["authorization"] is None for r in _cdn_gets(hub))
    # chatapp's offline default is back in force after the pull.
    assert constants.HF_HUB_OFFLINE is True
    # Pulling again downloads nothing.
    hub.reset_counters()
    assert pull_model(REAL).path == model.path
    assert hub.bytes_served == 0


def test_interrupted_download_resumes_and_is_never_listed_meanwhile(
    hub: HubServer, bundled_gguf: Path
) -> None:
    size = bundled_gguf.stat().st_size
    # The connection drops at 40%; huggingface-hub's retry then gets 503: the run fails.
    hub.drop_next_download(after_bytes=int(size * 0.4), then_fail=1)
    with pytest.raises(HubError, match="HTTP 503"):
        pull_model(REAL)
    [partial] = _partials()
    kept = partial.stat().st_size
    assert kept == int(size * 0.4)
    assert [m.name for m in installed_models()] == ["smollm2-135m"]
    with pytest.raises(ModelNotFoundError, match="unknown name"):
        resolve_model_path("smollm2-135m-instruct-q4_1")

    hub.reset_counters()
    model = pull_model(REAL)
    refetched = hub.bytes_served - (size - kept)
    assert refetched <= 0.01 * kept
    assert _cdn_gets(hub)[0]["range"] == f"bytes={kept}-"
    assert hashlib.sha256(model.path.read_bytes()).hexdigest() == model.sha256
    assert _partials() == []


def test_a_dropped_connection_is_resumed_within_the_same_pull(hub: HubServer) -> None:
    hub.drop_next_download(after_bytes=1_000_000)
    model = pull_model(SMALL)  # picks the Q4_K_M file by default
    assert model.quant == "Q4_K_M"
    size = model.path.stat().st_size
    assert hub.bytes_served == size  # the retry asked only for the rest
    assert [r["range"] for r in _cdn_gets(hub)] == [None, "bytes=1000000-"]


def test_corrupted_bytes_are_rejected_and_removed(
    hub: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ChecksumError, match="sha256"):
        pull_model("test-org/Corrupt-GGUF")
    assert _partials() == [] and find_installed("corrupt-q4_k_m") is None
    code, _, err = run_cli(["models", "pull", "test-org/Corrupt-GGUF"], capsys)
    assert code == 1
    assert_ends_with_error(err, "Corrupt-Q4_K_M.gguf", "download corrupt", "removed")


def test_missing_repo_file_and_quant_are_one_line_errors(
    hub: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["models", "pull", "test-org/No-Such-Repo"], capsys)
    assert code == 2
    assert_one_line_error(err, "'test-org/No-Such-Repo'", "not found on", hub.endpoint)
    code, _, err = run_cli(["models", "pull", f"{REAL}:nope.gguf"], capsys)
    assert code == 2
    assert_one_line_error(err, "'nope.gguf'", "not in repo", REAL_FILE)
    code, _, err = run_cli(["models", "pull", f"{SMALL}:Q6_K"], capsys)
    assert code == 2
    assert_one_line_error(err, "no Q6_K file", "Small-Q8_0.gguf")
    assert _cdn_gets(hub) == []


def test_repo_without_gguf_files_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["models", "pull", "test-org/safetensors-only"], capsys)
    assert code == 2
    assert_one_line_error(err, "test-org/safetensors-only", "has no GGUF files")


def test_disk_too_small_is_refused_before_downloading(hub: HubServer) -> None:
    with pytest.raises(DiskSpaceError) as caught:
        pull_model(REAL, free_disk=lambda path: 50_000_000)
    assert "needs 0.10 GB" in str(caught.value) and "0.05 GB is free" in str(caught.value)
    assert _cdn_gets(hub) == [] and hub.bytes_served == 0


def test_disk_too_small_on_a_real_small_filesystem(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    small = tmp_path / "small-disk"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-size test covers it")
    try:
        monkeypatch.setenv("CHATAPP_HOME", str(small / "home"))
        code, _, err = run_cli(["models", "pull", REAL], capsys)
        assert code == 1
        assert_one_line_error(err, "needs 0.10 GB", "is free")
        assert _cdn_gets(hub) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_catalog_name_pull_then_list_and_rm(
    hub: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["models", "pull", "smollm2-360m-instruct"], capsys)
    assert code == 0 and "installed smollm2-360m-instruct" in out
    assert "bartowski/SmolLM2-360M-Instruct-GGUF" in hub.requests[1]["path"]
    code, out, _ = run_cli(["models", "list", "--json"], capsys)
    rows = [r for r in json.loads(out)["models"] if r["name"] == "smollm2-360m-instruct"]
    assert [(r["status"], r["source"]) for r in rows] == [("installed", "downloaded")]
    path = find_installed("smollm2-360m-instruct").path
    code, out, _ = run_cli(["models", "rm", "smollm2-360m-instruct"], capsys)
    assert code == 0 and not path.exists()


def test_unknown_name_suggests_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["models", "pull", "exaone-2.4b"], capsys)
    assert code == 2
    assert_one_line_error(err, "unknown name", "exaone-3.5-2.4b-instruct")


def test_search_lists_only_repos_with_gguf_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["models", "search", "test-org", "--json"], capsys)
    assert code == 0
    repos = {hit["repo"] for hit in json.loads(out)}
    assert {REAL, SMALL} <= repos and "test-org/safetensors-only" not in repos


def test_hub_down_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(BackendUnavailableError, match="cannot be reached"):
        pull_model(SMALL)
    code, _, err = run_cli(["models", "search", "smol"], capsys)
    assert code == 3
    assert_one_line_error(err, f"http://127.0.0.1:{port}", "cannot be reached")

"""Server mode: index, search and manage collections in a real ``chroma run`` on loopback; an
unreachable server is one line naming its URL."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.documents import CORPUS, run_cli, write_corpus

READY_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (the venv's ``chroma`` CLI) on a free loopback port."""
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        found = shutil.which("chroma")
        if found is None:
            pytest.skip("the chroma CLI is not installed")
        chroma = Path(found)
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = (data / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(data / "db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    import httpx

    while True:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"chroma run did not start: {(data / 'server.log').read_text()[-500:]}")
        time.sleep(0.2)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.mark.slow
def test_index_search_and_remove_on_a_chroma_server(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CHATAPP_RETRIEVAL__EMBEDDER", "hashing")
    corpus = write_corpus(tmp_path / "docs", CORPUS)
    url = ["--chroma-url", chroma_server]
    code, out, err = run_cli(["index", str(corpus), "-C", "remote", "--json", *url], capsys)
    assert code == 0, err
    assert len(json.loads(out)["indexed"]) == 4
    code, out, _ = run_cli(["search", "prune roses", "-C", "remote", "--json", *url], capsys)
    assert code == 0 and json.loads(out)[0]["path"].endswith("roses.md")
    # The vectors live in the server, not in the local embedded store.
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server.rsplit(":", 1)[1]))
    names = [c.name for c in client.list_collections()]
    assert any(name.startswith("chatapp-remote-") for name in names)
    code, out, _ = run_cli(["collections", "list", "--json", *url], capsys)
    assert [c["store"] for c in json.loads(out)] == [chroma_server]
    code, out, _ = run_cli(["collections", "list", "--json"], capsys)  # local: nothing there
    assert json.loads(out) == []
    (corpus / "garden/roses.md").unlink()
    code, out, _ = run_cli(["index", str(corpus), "-C", "remote", "--json", *url], capsys)
    assert json.loads(out)["removed"] == [str(corpus / "garden/roses.md")]
    code, out, _ = run_cli(["collections", "rm", "remote", *url], capsys)
    assert code == 0
    assert not any(c.name.startswith("chatapp-remote-") for c in client.list_collections())


def test_unreachable_server_is_one_line_naming_the_url(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CHATAPP_RETRIEVAL__EMBEDDER", "hashing")
    corpus = write_corpus(tmp_path / "docs", {"a.md": "# A\n\nText.\n"})
    dead = f"http://127.0.0.1:{_free_port()}"
    code, _, err = run_cli(["index", str(corpus), "-C", "x", "--chroma-url", dead], capsys)
    assert code == 3
    assert (
        err == f"error: chroma server {dead}: cannot be reached (is `chroma run` running there?)\n"
    )
    code, _, err = run_cli(["index", str(corpus), "-C", "x", "--chroma-url", "ftp://h:1"], capsys)
    assert code == 2 and err.startswith(
        "error: chroma URL ftp://h:1: not an http(s)://host:port URL"
    )

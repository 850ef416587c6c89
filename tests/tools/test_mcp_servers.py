"""Real MCP servers (tests/support/mcp_servers.py, written with the SDK) over stdio and over
Streamable HTTP on loopback, through chatapp's provider and registry: listing and calling, and
servers that cannot start, hang, die mid-call, answer garbage, send 5 MB or hostile text."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from chatapp.config import load_settings
from chatapp.domain import CancelToken, ToolCall
from chatapp.tools.mcp_client import McpServerError, McpServerTools
from chatapp.tools.mcp_config import McpServerEntry
from chatapp.tools.registry import ToolLimits, ToolRegistry
from chatapp.tools.setup import build_registry
from tests.support.mcp_servers import HOSTILE_TEXT, TRICKY_DESCRIPTION

pytestmark = pytest.mark.slow

SERVERS = str(Path(__file__).resolve().parents[1] / "support" / "mcp_servers.py")
CHATAPP = str(Path(sys.executable).with_name("chatapp"))


def stdio_entry(mode: str = "stdio", name: str = "t", **env: str) -> McpServerEntry:
    return McpServerEntry(
        name=name, transport="stdio", command=sys.executable, args=(SERVERS, mode), env=env
    )


def provider(entry: McpServerEntry, **kw: float) -> McpServerTools:
    return McpServerTools(entry, **{"start_timeout_s": 30.0, "call_timeout_s": 10.0, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stdio_server() -> Iterator[McpServerTools]:
    """One stdio server shared by the tests that leave it usable."""
    tools = provider(stdio_entry(MINE="from mcp.json"), call_timeout_s=2.0)
    yield tools
    tools.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, SERVERS, "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "the HTTP test server exited"
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    server.kill()
    server.wait()


def run(registry: ToolRegistry, name: str, **arguments: object) -> tuple[str, str]:
    result = registry.run(ToolCall(id="1", name=name, arguments=dict(arguments)))
    return result.status, result.content


def test_stdio_server_lists_and_calls(stdio_server: McpServerTools) -> None:
    specs = {s.name: s for s in stdio_server.specs()}
    assert {"t.add", "t.echo", "t.hang", "t.die", "t.hostile"} <= set(specs)
    add = specs["t.add"]
    assert add.server == "t" and add.description == "Add two whole numbers."
    assert add.parameters["required"] == ["a", "b"]
    registry = ToolRegistry([stdio_server])
    assert run(registry, "t.add", a=2, b=40) == ("ok", "42")
    assert run(registry, "t.picture") == ("ok", "a red dot\n[image image/png, 9 bytes]")
    status, content = run(registry, "t.add", a="two", b=1)  # checked before it is sent
    assert status == "error" and "bad arguments" in content


def test_http_server_lists_and_calls(http_url: str) -> None:
    headers = {"Authorization": "Bearer from-keys"}
    tools = provider(McpServerEntry(name="web", transport="http", url=http_url, headers=headers))
    try:
        assert "web.add" in {s.name for s in tools.specs()}
        registry = ToolRegistry([tools])
        assert run(registry, "web.add", a=1, b=2) == ("ok", "3")
        assert run(registry, "web.authorization") == ("ok", "Bearer from-keys")
        status, content = run(ToolRegistry([tools], ToolLimits(max_result_chars=1000)), "web.big", size=5_000_000)  # fmt: skip
        assert status == "ok" and len(content) < 1100 and "result cut" in content
    finally:
        tools.close()


def test_an_http_server_that_is_not_there_is_one_line() -> None:
    tools = provider(McpServerEntry(name="gone", transport="http", url=f"http://127.0.0.1:{free_port()}/mcp"))  # fmt: skip
    with pytest.raises(McpServerError, match="MCP server 'gone': could not start: cannot connect"):
        tools.specs()
    tools.close()


def test_five_megabytes_are_cut_before_the_model_reads_them(stdio_server: McpServerTools) -> None:
    registry = ToolRegistry([stdio_server], ToolLimits(max_result_chars=4096))
    status, content = run(registry, "t.big", size=5_000_000)
    assert status == "ok" and content.startswith("x" * 4096)
    assert len(content) < 4200 and "4,096 of" in content


def test_hostile_text_stays_data(stdio_server: McpServerTools) -> None:
    registry = ToolRegistry([stdio_server])
    assert run(registry, "t.hostile") == ("ok", HOSTILE_TEXT)  # byte for byte, for the model
    tricky = next(s for s in stdio_server.specs() if s.name == "t.tricky")
    assert tricky.description == TRICKY_DESCRIPTION


def test_a_hanging_call_times_out_and_the_server_stays_usable(
    stdio_server: McpServerTools,
) -> None:
    registry = ToolRegistry([stdio_server], ToolLimits(call_timeout_s=5.0))
    started = time.monotonic()
    status, content = run(registry, "t.hang")
    assert time.monotonic() - started < 4.5  # the provider's 2 s, not the registry's 5 s
    assert status == "error" and "MCP server 't': hang: no answer within 2 s" in content
    assert run(registry, "t.add", a=1, b=1) == ("ok", "2")


def test_a_stopped_turn_stops_a_running_call(stdio_server: McpServerTools) -> None:
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    started = time.monotonic()
    result = ToolRegistry([stdio_server]).run(ToolCall(id="1", name="t.hang"), cancel)
    assert time.monotonic() - started < 1.5
    assert result.status == "interrupted" and "stopped" in result.content
    assert run(ToolRegistry([stdio_server]), "t.echo", text="still here") == ("ok", "still here")


def test_a_server_that_dies_mid_call_is_one_line_and_restarts_on_next_use() -> None:
    tools = provider(stdio_entry(name="mortal"))
    registry = ToolRegistry([tools])
    first_pid = int(run(registry, "mortal.pid")[1])
    status, content = run(registry, "mortal.die")
    assert status == "error" and content.startswith("error: MCP server 'mortal': die:")
    assert "connection closed" in content and "\n" not in content
    assert run(registry, "mortal.add", a=2, b=2) == ("ok", "4")
    assert int(run(registry, "mortal.pid")[1]) != first_pid
    tools.close()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            McpServerEntry(name="nocmd", transport="stdio", command="no-such-program-zz9"),
            "MCP server 'nocmd': could not start: no such program no-such-program-zz9",
        ),
        (
            stdio_entry("garbage", name="junk"),
            "MCP server 'junk': could not start: the connection closed",
        ),
        (
            stdio_entry("silent", name="mute"),
            "MCP server 'mute': did not start and list its tools within 3 s",
        ),
    ],
)
def test_a_server_that_cannot_start_is_one_line_and_never_hangs(
    entry: McpServerEntry, expected: str
) -> None:
    tools = provider(entry, start_timeout_s=3.0)
    registry = ToolRegistry([tools])
    started = time.monotonic()
    status, content = run(registry, f"{entry.name}.anything")
    assert time.monotonic() - started < 6
    assert status == "error" and expected in content and "\n" not in content
    started = time.monotonic()  # not retried in this process: the same line at once
    with pytest.raises(McpServerError, match="MCP server"):
        tools.specs()
    assert time.monotonic() - started < 0.5
    tools.close()


def test_stdio_servers_get_an_allow_listed_environment(
    stdio_server: McpServerTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ours")
    monkeypatch.setenv("HF_TOKEN", "hf_ours")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    tools = provider(stdio_entry(name="envy", MINE="named in its entry"))
    env = json.loads(ToolRegistry([tools]).run(ToolCall(id="1", name="envy.environment")).content)
    tools.close()
    assert env["MINE"] == "named in its entry"
    assert env["LC_ALL"] == "C.UTF-8" and env["PATH"] == os.environ["PATH"]
    assert "sk-ours" not in json.dumps(env) and "hf_ours" not in json.dumps(env)
    assert not {"OPENAI_API_KEY", "HF_TOKEN", "CHATAPP_HOME"} & set(env)


def test_close_ends_the_server_process() -> None:
    tools = provider(stdio_entry(name="brief"))
    pid = int(ToolRegistry([tools]).run(ToolCall(id="1", name="brief.pid")).content)
    assert psutil.pid_exists(pid)
    started = time.monotonic()
    tools.close()
    assert time.monotonic() - started < 5
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_servers_stop_when_chatapp_exits_without_closing_them() -> None:
    script = (
        "import sys\n"
        "from chatapp.domain import ToolCall\n"
        "from chatapp.tools.mcp_config import McpServerEntry\n"
        "from chatapp.tools.mcp_client import McpServerTools\n"
        f"entry = McpServerEntry('left', 'stdio', command=sys.executable, args=({SERVERS!r}, 'stubborn'))\n"
        "print(McpServerTools(entry, start_timeout_s=60).call('pid', {}, None).content)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_build_registry_reads_mcp_json_with_the_settings_limits(chatapp_home: Path) -> None:
    folder = chatapp_home / "config"
    folder.mkdir(parents=True)
    entry = {"command": sys.executable, "args": [SERVERS, "stdio"]}
    (folder / "mcp.json").write_text(json.dumps({"mcpServers": {"local": entry}}))
    (folder / "config.toml").write_text("[tools]\nmax_result_tokens = 64\n")
    registry = build_registry(load_settings())
    try:
        assert registry.servers() == ["clock", "math", "local"]
        status, content = run(registry, "local.big", size=10_000)
        assert status == "ok" and content.startswith("x" * 256) and "256 of 10,000" in content
    finally:
        registry.close()


def chatapp_on_a_terminal(*args: str) -> tuple[int, str]:
    """Run the real CLI with its stdout on a pseudo-terminal; (exit code, what it printed)."""
    leader, follower = pty.openpty()
    done = subprocess.run([CHATAPP, *args], stdout=follower, stderr=subprocess.PIPE, timeout=120)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return done.returncode, out.decode("utf-8", "replace")


def test_the_cli_prints_server_text_escaped_on_a_terminal(chatapp_home: Path) -> None:
    folder = chatapp_home / "config"
    folder.mkdir(parents=True)
    entry = {"command": sys.executable, "args": [SERVERS, "stdio"]}
    (folder / "mcp.json").write_text(json.dumps({"mcpServers": {"t": entry}}))
    code, shown = chatapp_on_a_terminal("tools", "call", "t.hostile")
    assert code == 0
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b]52;c;cHduZWQ=\\x07" in shown and "<|im_end|>" in shown
    code, shown = chatapp_on_a_terminal("tools", "list")
    assert code == 0 and "\x1b" not in shown and "\u202e" not in shown
    assert "\\x1b[31mRED" in shown and "t.tricky  (MCP server t; ask:" in shown
    piped = subprocess.run([CHATAPP, "tools", "list", "--json"], capture_output=True, text=True, timeout=120)  # fmt: skip
    rows = {row["name"]: row for row in json.loads(piped.stdout)}
    assert rows["t.add"]["approval"] == "ask" and rows["clock.now"]["approval"] == "allow"
    assert rows["t.tricky"]["description"] == TRICKY_DESCRIPTION  # JSON keeps the data

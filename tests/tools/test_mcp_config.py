"""mcp.json and ``chatapp mcp``: pasted entries read, every bad file one line naming the file or
server (exit 2 through the real CLI), credential headers kept in the 0600 keys file only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from chatapp.tools.mcp_config import McpConfigError, load_servers, parse_entry

CHATAPP = str(Path(sys.executable).with_name("chatapp"))

PASTED = {
    "mcpServers": {
        "files": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
            "env": {"DEBUG": "1"},
        },
        "remote": {"url": "https://example.org/mcp", "headers": {"X-Team": "blue"}},
        "typed": {"type": "streamable-http", "url": "http://127.0.0.1:1/mcp"},
        "off": {"command": "x", "disabled": True},
    }
}


def chatapp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATAPP, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )


def config_dir(home: Path) -> Path:
    folder = home / "config"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_entries_pasted_from_other_hosts_are_read(tmp_path: Path) -> None:
    file = tmp_path / "mcp.json"
    file.write_text(json.dumps(PASTED), encoding="utf-8")
    entries = {e.name: e for e in load_servers(file, {"remote": {"Authorization": "Bearer t"}})}
    assert set(entries) == {"files", "remote", "typed"}  # "off" is disabled
    files = entries["files"]
    assert (files.transport, files.command, files.args) == ("stdio", "npx", ("-y", "@modelcontextprotocol/server-filesystem", "/tmp"))  # fmt: skip
    assert files.env == {"DEBUG": "1"}
    assert entries["remote"].transport == "http"
    assert entries["remote"].headers == {"X-Team": "blue", "Authorization": "Bearer t"}
    assert entries["remote"].literal_secrets == ()
    assert entries["typed"].transport == "http"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"type": "websocket", "url": "ws://x"}, "unknown transport 'websocket'"),
        ({"type": "sse", "url": "http://x/sse"}, "SSE is deprecated"),
        ({"args": ["server.js"]}, "missing 'command'"),
        ({"command": "x", "url": "http://x"}, "both 'command' and 'url'"),
        (["npx", "server"], "must be an object"),
        ({"command": "x", "args": "one string"}, "'args' must be a list of strings"),
        ({"command": "x", "env": {"A": 1}}, "'env' must be an object of strings"),
        ({"url": "file:///etc/passwd"}, "'url' must be an http:// or https:// address"),
    ],
)
def test_a_bad_entry_is_one_line_naming_the_server(raw: object, problem: str) -> None:
    with pytest.raises(McpConfigError) as caught:
        parse_entry("mcp.json", "srv", raw, {})
    message = caught.value.message
    assert "server 'srv'" in message and problem in message and "\n" not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("name", ["a.b", "", "x" * 65, "math", "sp ace", "\x1b[31m"])
def test_server_names_that_cannot_prefix_tools_are_refused(name: str) -> None:
    with pytest.raises(McpConfigError):
        parse_entry("mcp.json", name, {"command": "x"}, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"mcpServers": {"a": {"command": "x",}}}', "mcp.json:1:38: not valid JSON"),
        ('{"mcpServers": {"a": {"type": "carrier-pigeon"}}}', "unknown transport 'carrier-pigeon'"),
        ('{"mcpServers": {"a": {"args": ["-y"]}}}', "server 'a': missing 'command'"),
        ('{"mcpServers": {"a": "npx server"}}', "server 'a': must be an object"),
        ('{"mcpServers": ["a"]}', "'mcpServers' must be an object"),
        ("[1, 2]", "must hold a JSON object"),
        ("\xff\xfe", "not UTF-8"),
    ],
)
def test_a_bad_mcp_json_is_one_line_exit_2_through_the_cli(
    chatapp_home: Path, text: str, expected: str
) -> None:
    file = config_dir(chatapp_home) / "mcp.json"
    file.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    before = file.read_bytes()
    for command in (["mcp", "list"], ["tools", "list"]):
        done = chatapp(*command)
        assert done.returncode == 2, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert str(file) in lines[0] and expected in lines[0], lines[0]
        assert "Traceback" not in done.stderr
    assert file.read_bytes() == before  # nothing rewritten, nothing lost


def test_an_oversized_or_special_mcp_json_is_refused_unread(chatapp_home: Path) -> None:
    file = config_dir(chatapp_home) / "mcp.json"
    file.write_bytes(b" " * (2 << 20))
    with pytest.raises(McpConfigError, match="larger than 1024 KiB"):
        load_servers(file)
    file.unlink()
    os.mkfifo(file)  # a named pipe must not hang the read
    with pytest.raises(McpConfigError, match="not a regular file"):
        load_servers(file)


def test_mcp_add_keeps_credential_headers_in_the_keys_file_only(chatapp_home: Path) -> None:
    token = "Bearer sk-very-secret-123"
    done = chatapp("mcp", "add", "web", "--url", "http://127.0.0.1:9/mcp",
                   "--header", f"Authorization={token}", "--header", "X-Team=blue")  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = chatapp_home / "config"
    mcp_json, keys = folder / "mcp.json", folder / "keys.toml"
    assert token not in mcp_json.read_text(encoding="utf-8")
    assert json.loads(mcp_json.read_text())["mcpServers"]["web"]["headers"] == {"X-Team": "blue"}
    assert tomllib.loads(keys.read_text())["mcp"]["headers"]["web"] == {"Authorization": token}
    for file in (mcp_json, keys):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    shown = chatapp("config", "show")
    assert token not in shown.stdout  # masked like backend.api_key
    listed = chatapp("mcp", "list", "--json")
    assert json.loads(listed.stdout)[0]["headers_in_keys_file"] == ["Authorization"]
    assert token not in listed.stdout + listed.stderr
    assert chatapp("mcp", "rm", "web").returncode == 0
    assert "web" not in json.loads(mcp_json.read_text())["mcpServers"]
    assert token not in keys.read_text()
    again = chatapp("mcp", "rm", "web")
    assert again.returncode == 2 and "no server 'web'" in again.stderr


def test_a_literal_token_in_mcp_json_works_but_is_warned_about(chatapp_home: Path) -> None:
    file = config_dir(chatapp_home) / "mcp.json"
    entry = {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer pasted"}}
    file.write_text(json.dumps({"mcpServers": {"pasted": entry}}), encoding="utf-8")
    (server,) = load_servers(file)
    assert server.headers["Authorization"] == "Bearer pasted"
    assert server.literal_secrets == ("Authorization",)
    done = chatapp("mcp", "list")
    assert done.returncode == 0
    assert "warning:" in done.stderr and "'pasted'" in done.stderr
    assert "Authorization header written in the file" in done.stderr
    assert "Bearer pasted" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["mcp", "add", "x"], "either --command"),
        (["mcp", "add", "x", "--command", "a", "--url", "http://h"], "either --command"),
        (["mcp", "add", "x.y", "--command", "a"], "server name"),
        (["mcp", "add", "x", "--url", "http://h", "--header", "novalue"], "NAME=VALUE"),
        (["mcp", "add", "clock", "--command", "a"], "built-in"),
        (["tools", "call", "math.calculate", "--arg", "noequals"], "NAME=VALUE"),
        (["tools", "call", "nosuch.tool"], "no tool 'nosuch.tool'"),
        (["tools", "call", "math.nosuch"], "has no tool 'math.nosuch'"),
        (["tools", "call", "math.calculate", "--arg", "expression=[1]"], "bad arguments"),
    ],
)
def test_bad_tools_and_mcp_arguments_are_one_line_exit_2(
    chatapp_home: Path, args: list[str], expected: str
) -> None:
    done = chatapp(*args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert not (chatapp_home / "config" / "mcp.json").exists()


def test_tools_call_runs_a_builtin_without_asking(chatapp_home: Path) -> None:
    done = chatapp("tools", "call", "math.calculate", "--arg", "expression=2**70", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok" and result["content"].endswith(str(2**70))

"""``mcp.json``: the MCP servers chatapp may start, beside ``config.toml``.

The file has the ``mcpServers`` shape Claude Desktop, LM Studio and Cursor use, so an entry
can be pasted from them::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
                  "env": {"DEBUG": "1"}, "cwd": "/home/me"},
        "search": {"url": "https://example.org/mcp", "headers": {"X-Team": "blue"}}}}

An entry with ``command`` runs over stdio, one with ``url`` over Streamable HTTP (``type`` /
``transport`` may say so: ``stdio``, ``http``, ``streamable-http``). Header values that are
credentials (``Authorization``, anything naming a token, key, secret, cookie or password) belong
in the keys file (``[mcp.headers.SERVER]`` in ``keys.toml``, 0600): ``chatapp mcp add`` puts them
there, a literal one pasted into ``mcp.json`` still works but ``chatapp tools list`` warns.
Every problem is a ``McpConfigError``: one line naming the file or the server, exit 2."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chatapp import paths
from chatapp.errors import ConfigError

MCP_FILE = "mcp.json"
MAX_FILE_BYTES = 1 << 20
"""A bigger ``mcp.json`` is refused unread (a pasted log, a device file)."""
BUILTIN_NAMES = frozenset({"clock", "math", "documents"})
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SECRET_HEADER = re.compile(r"authorization|token|key|secret|cookie|password|credential", re.I)
_TRANSPORTS = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamable_http": "http",
    "streamablehttp": "http",
}

Transport = Literal["stdio", "http"]


class McpConfigError(ConfigError):
    """``mcp.json`` (or a ``chatapp mcp`` argument) is not usable; exit 2."""


@dataclass(frozen=True)
class McpServerEntry:
    """One server of ``mcp.json``, with its header secrets from the keys file merged in."""

    name: str
    transport: Transport
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    literal_secrets: tuple[str, ...] = ()
    """Credential headers written in ``mcp.json`` itself (``tools list`` warns about them)."""

    def describe(self) -> str:
        """``npx -y server`` or the URL: what the user would recognise."""
        if self.transport == "stdio":
            return " ".join([self.command, *self.args])
        return self.url

    def to_json(self) -> dict[str, Any]:
        """The entry as ``mcp.json`` holds it (without secrets from the keys file)."""
        if self.transport == "stdio":
            out: dict[str, Any] = {"command": self.command, "args": list(self.args)}
            if self.env:
                out["env"] = dict(self.env)
            if self.cwd:
                out["cwd"] = self.cwd
            return out
        out = {"type": "http", "url": self.url}
        public = {k: v for k, v in self.headers.items() if not is_secret_header(k)}
        if public:
            out["headers"] = public
        return out


def mcp_file() -> Path:
    """Where ``mcp.json`` lives: the config folder, beside ``config.toml``."""
    return paths.config_dir() / MCP_FILE


def is_secret_header(name: str) -> bool:
    return bool(_SECRET_HEADER.search(name))


def load_servers(
    path: Path | None = None, secret_headers: Mapping[str, Mapping[str, str]] | None = None
) -> list[McpServerEntry]:
    """The servers of ``mcp.json`` ([] when there is none), each with the header secrets the
    keys file holds for it (``settings.mcp.headers``). Entries with ``"disabled": true`` are
    left out. Raises ``McpConfigError`` naming the file or server and the problem."""
    file = path or mcp_file()
    data = read_mcp_json(file)
    servers = data.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise McpConfigError(f"{file}: 'mcpServers' must be an object of servers by name")
    secrets = secret_headers or {}
    entries = []
    for name, raw in servers.items():
        if isinstance(raw, dict) and raw.get("disabled") is True:
            continue
        entries.append(parse_entry(file, name, raw, secrets.get(name, {})))
    return entries


def read_mcp_json(file: Path) -> dict[str, Any]:
    """The file's object ({} when it does not exist), read at most ``MAX_FILE_BYTES``; a file
    that is not a regular file, too big, not UTF-8 or not a JSON object is one line."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise McpConfigError(f"{file}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise McpConfigError(f"{file}: not a regular file")
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise McpConfigError(f"{file}: larger than {MAX_FILE_BYTES >> 10} KiB; not read")
    paths.make_private(file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise McpConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise McpConfigError(
            f"{file}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})"
        ) from None
    except RecursionError:
        raise McpConfigError(f"{file}: nested too deeply to read") from None
    if not isinstance(data, dict):
        raise McpConfigError(f"{file}: must hold a JSON object with 'mcpServers'")
    return data


def parse_entry(
    file: Path | str, name: object, raw: object, secrets: Mapping[str, str]
) -> McpServerEntry:
    """One ``mcpServers`` entry checked; ``McpConfigError`` names the server and the problem."""
    where = f"{file}: server {name!r}"
    check_name(name, where)
    assert isinstance(name, str)
    if not isinstance(raw, dict):
        raise McpConfigError(f"{where}: must be an object (with 'command' or 'url')")
    kind = raw.get("type", raw.get("transport"))
    if kind is None:
        if "command" in raw and "url" in raw:
            raise McpConfigError(f"{where}: has both 'command' and 'url'; keep one")
        kind = "http" if "url" in raw else "stdio"
    transport = _TRANSPORTS.get(str(kind).lower()) if isinstance(kind, str) else None
    if transport is None:
        hint = " (SSE is deprecated: use the server's Streamable HTTP URL)" if kind == "sse" else ""
        raise McpConfigError(
            f"{where}: unknown transport {kind!r}; use stdio (command) or http (url){hint}"
        )
    if transport == "stdio":
        command = raw.get("command")
        if not isinstance(command, str) or not command.strip():
            raise McpConfigError(f"{where}: missing 'command' (the program that runs the server)")
        cwd = raw.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise McpConfigError(f"{where}: 'cwd' must be a folder path")
        return McpServerEntry(
            name=name,
            transport="stdio",
            command=command,
            args=tuple(_strings(raw.get("args", []), f"{where}: 'args'")),
            env=_string_map(raw.get("env", {}), f"{where}: 'env'"),
            cwd=cwd,
        )
    url = raw.get("url")
    if not isinstance(url, str) or not re.match(r"https?://[^\s/]+", url):
        raise McpConfigError(f"{where}: 'url' must be an http:// or https:// address")
    headers = _string_map(raw.get("headers", {}), f"{where}: 'headers'")
    literal = tuple(k for k, v in headers.items() if is_secret_header(k) and v)
    return McpServerEntry(
        name=name,
        transport="http",
        url=url,
        headers={**headers, **{str(k): str(v) for k, v in secrets.items()}},
        literal_secrets=literal,
    )


def check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise McpConfigError(
            f"{where}: a server name is 1-64 letters, digits, '-' or '_' (tools are SERVER.TOOL)"
        )
    if name in BUILTIN_NAMES:
        raise McpConfigError(f"{where}: {name!r} is a built-in tool server; choose another name")


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise McpConfigError(f"{where} must be a list of strings")
    return list(value)


def _string_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise McpConfigError(f"{where} must be an object of strings")
    return dict(value)


def save_server(entry: McpServerEntry, path: Path | None = None) -> Path:
    """Add (or replace) ``entry`` in ``mcp.json``, keeping every other entry and key as they
    are; credential headers are left out (``store_secret_headers`` keeps them). Atomic, 0600."""
    file = path or mcp_file()
    data = read_mcp_json(file)
    servers = data.setdefault("mcpServers", {})
    if not isinstance(servers, dict):
        raise McpConfigError(f"{file}: 'mcpServers' must be an object of servers by name")
    servers[entry.name] = entry.to_json()
    _write(file, data)
    return file


def remove_server(name: str, path: Path | None = None) -> bool:
    """Take ``name`` out of ``mcp.json``; False when it was not there."""
    file = path or mcp_file()
    data = read_mcp_json(file)
    servers = data.get("mcpServers")
    if not isinstance(servers, dict) or name not in servers:
        return False
    del servers[name]
    _write(file, data)
    return True


def _write(file: Path, data: dict[str, Any]) -> None:
    # A read-only or full config folder is paths' one-line NotWritableFileError.
    paths.write_private_text(file, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def store_secret_headers(name: str, headers: Mapping[str, str] | None) -> Path | None:
    """Keep ``name``'s credential headers in the keys file (``None`` / {}: forget them).
    Returns the keys file's path when it changed."""
    from chatapp.config import load_settings, save_settings

    settings = load_settings()
    current = {k: dict(v) for k, v in settings.mcp.headers.items()}
    if headers:
        current[name] = dict(headers)
    elif current.pop(name, None) is None:
        return None
    settings.mcp.headers = current
    save_settings(settings)
    with contextlib.suppress(OSError):
        paths.make_private(paths.keys_file())
    return paths.keys_file()

"""``chatapp tools`` (what the model may call) and ``chatapp mcp`` (the servers of ``mcp.json``).

``tools list`` starts each MCP server (in parallel, each bounded by ``tools.start_timeout_s``)
to list its tools; ``tools call`` runs one call through the registry, as the model's would run,
but without asking: the user typed it. ``mcp add|rm|list`` edit and show ``mcp.json`` without
starting anything; credential headers go to the keys file, never into ``mcp.json``. Names and
descriptions come from servers and the file: they are printed escaped on a terminal."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chatapp.errors import ChatappError, NotFoundError, UsageError
from chatapp.terminal_text import for_stream

if TYPE_CHECKING:
    from chatapp.config import Settings
    from chatapp.domain import Retrieval, ToolSpec
    from chatapp.tools.mcp_config import McpServerEntry
    from chatapp.tools.registry import ToolRegistry

tools_app = typer.Typer(help="Tools the model may call (built-ins and MCP servers).")
mcp_app = typer.Typer(help="MCP servers (mcp.json beside config.toml).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tools_app, name="tools", no_args_is_help=True)
    app.add_typer(mcp_app, name="mcp")


def _out(text: str) -> None:
    print(for_stream(text, sys.stdout))


def _err(text: str) -> None:
    print(for_stream(text, sys.stderr), file=sys.stderr)


def _registry(settings: Settings, collection: str | None = None) -> ToolRegistry:
    """The registry with ``documents.search`` over a retriever made on its first call."""
    from chatapp.tools.setup import build_registry

    retrievers: list[Any] = []

    def search(query: str, name: str, top_k: int) -> Retrieval:
        if not retrievers:
            from chatapp.retrieval.search.grounding import DocumentRetriever

            retrievers.append(DocumentRetriever(settings))
        return retrievers[0].retrieve(query, name, top_k)  # type: ignore[no-any-return]

    return build_registry(settings, search=search, collection=collection)


def _approval(settings: Settings, spec: ToolSpec) -> tuple[str, str]:
    """("allow" | "deny" | "ask", why) for calls the model makes to ``spec``."""
    from chatapp.domain import ToolCall
    from chatapp.tools.approval import ToolGate

    gate = ToolGate(rules=settings.tools.rules, allow_read_only=settings.tools.allow_read_only)
    verdict = gate.decide(ToolCall(id="list", name=spec.name), spec)
    if verdict.allowed:
        return "allow", verdict.reason
    if settings.tools.rules.get(spec.name) == "deny":
        return "deny", verdict.reason
    return "ask", "asks you first (no rule for it)"


def _literal_secret_warnings(entries: list[McpServerEntry]) -> None:
    from chatapp.tools.mcp_config import mcp_file

    for entry in entries:
        for header in entry.literal_secrets:
            _err(
                f"warning: {mcp_file()}: server {entry.name!r} has its {header} header written"
                f" in the file; keep it in the keys file instead: chatapp mcp add {entry.name}"
                f" --url {entry.url} --header {header}=…"
            )


@tools_app.command("list")
def list_tools(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the tools.")] = False,
) -> None:
    """Every tool, its server, its arguments' schema and whether it runs without asking.
    Starts the MCP servers of mcp.json to ask them; a server that fails is one line on stderr
    (exit 3) and the others are still listed."""
    from concurrent.futures import ThreadPoolExecutor

    from chatapp.config import load_settings
    from chatapp.tools.approval import BUILTIN_SERVERS
    from chatapp.tools.mcp_config import load_servers

    settings = load_settings()
    _literal_secret_warnings(load_servers(None, settings.mcp.headers))
    registry = _registry(settings)
    failures: list[str] = []
    try:

        def specs_of(provider: Any) -> list[ToolSpec]:
            try:
                return list(provider.specs())
            except ChatappError as exc:
                failures.append(exc.message)
                return []

        with ThreadPoolExecutor(max_workers=8) as pool:
            groups = list(pool.map(specs_of, registry.providers))
    finally:
        registry.close()
    specs = [s for group in groups for s in group]
    rows = []
    for spec in specs:
        approval, why = _approval(settings, spec)
        rows.append(
            {
                "name": spec.name,
                "server": spec.server,
                "kind": "built-in" if spec.server in BUILTIN_SERVERS else "mcp",
                "description": spec.description,
                "parameters": spec.parameters,
                "read_only": spec.read_only,
                "approval": approval,
                "approval_reason": why,
            }
        )
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for spec, row in zip(specs, rows, strict=True):
            origin = "built-in" if row["kind"] == "built-in" else f"MCP server {spec.server}"
            _out(f"{spec.name}  ({origin}; {row['approval']}: {row['approval_reason']})")
            _out(f"    {' '.join(spec.description.split())[:300]}")
            _out(f"    arguments: {_arguments(spec.parameters)}")
    for failure in failures:
        _err(f"error: {failure}")
    if failures:
        raise typer.Exit(3)


def _arguments(schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    if not isinstance(props, dict) or not props:
        return "(none)"
    required = set(schema.get("required") or [])
    parts = []
    for name, prop in props.items():
        kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
        parts.append(f"{name} ({kind}{', required' if name in required else ''})")
    return ", ".join(parts)


def parse_arguments(pairs: list[str]) -> dict[str, Any]:
    """``--arg k=v`` pairs as a JSON object: a value that parses as JSON is that value
    (``n=3`` is a number, ``xs=[1,2]`` a list), anything else is the string itself."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--arg {pair!r}: write it as NAME=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            out[key.strip()] = value
    return out


@tools_app.command("call")
def call_tool(
    name: Annotated[str, typer.Argument(help="SERVER.TOOL, e.g. math.calculate.")],
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", help="NAME=VALUE (repeatable); VALUE is JSON when it parses."),
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", help="For documents.search.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The result as JSON.")] = False,
) -> None:
    """Run one tool call (to try a server): checked against its schema, bounded by
    tools.call_timeout_s, its result cut like the model's. No approval is asked: you typed
    it. Exit 1 when the tool reports an error."""
    from chatapp.config import load_settings
    from chatapp.domain import ToolCall
    from chatapp.tools.registry import argument_problem

    arguments = parse_arguments(arg or [])
    settings = load_settings()
    registry = _registry(settings, collection)
    try:
        if name.split(".", 1)[0] not in registry.servers() or "." not in name:
            known = ", ".join(registry.servers())
            raise UsageError(f"tools call: no tool {name!r} (SERVER.TOOL; servers: {known})")
        spec = registry.spec(name)
        if spec is None:
            raise UsageError(f"tools call: server {name.split('.', 1)[0]!r} has no tool {name!r}")
        problem = argument_problem(spec, arguments)
        if problem:
            raise UsageError(f"tools call {name}: bad arguments: {problem}")
        result = registry.run(ToolCall(id="cli", name=name, arguments=arguments))
    finally:
        registry.close()
    if as_json:
        print(json.dumps({"name": result.name, "status": result.status,
                          "content": result.content, "duration_s": round(result.duration_s, 3),
                          "sources": [s.to_dict() for s in result.sources]},
                         ensure_ascii=False))  # fmt: skip
    else:
        _out(result.content)
    if result.status != "ok":
        raise typer.Exit(1)


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {value!r}: write it as NAME=VALUE")
        out[key.strip()] = text
    return out


@mcp_app.command("add")
def add_server(
    name: Annotated[str, typer.Argument(help="The server's name: its tools are NAME.TOOL.")],
    command: Annotated[str | None, typer.Option("--command", help="Program (stdio).")] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="Its arguments.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="K=V for it.")] = None,
    cwd: Annotated[str | None, typer.Option("--cwd", help="Folder to run it in.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Streamable HTTP URL.")] = None,
    header: Annotated[list[str] | None, typer.Option("--header", help="K=V.")] = None,
) -> None:
    """Add (or replace) a server in mcp.json: --command (stdio) or --url (Streamable HTTP).
    Credential headers (Authorization, tokens, keys) are kept in the keys file (0600)."""
    from chatapp import paths
    from chatapp.tools.mcp_config import is_secret_header, parse_entry, save_server

    if (command is None) == (url is None):
        raise UsageError("mcp add: give either --command (stdio) or --url (Streamable HTTP)")
    if command is not None and header:
        raise UsageError("mcp add: --header is for --url servers")
    if url is not None and (arg or env or cwd):
        raise UsageError("mcp add: --arg, --env and --cwd are for --command servers")
    headers = _pairs(header, "--header")
    secrets = {k: v for k, v in headers.items() if is_secret_header(k)}
    raw: dict[str, Any] = (
        {"command": command, "args": list(arg or []), "env": _pairs(env, "--env")}
        if command is not None
        else {"type": "http", "url": url, "headers": headers}
    )
    if cwd is not None:
        raw["cwd"] = cwd
    entry = parse_entry("mcp add", name, raw, secrets)
    file = save_server(entry)
    from chatapp.tools.mcp_config import store_secret_headers

    keys = store_secret_headers(entry.name, secrets)
    _out(f"added MCP server {entry.name!r} ({entry.transport}: {entry.describe()}) to {file}")
    if secrets and keys is not None:
        _out(f"kept header(s) {', '.join(secrets)} in {paths.keys_file()} (readable only by you)")


@mcp_app.command("rm")
def remove_server(name: Annotated[str, typer.Argument(help="The server's name.")]) -> None:
    """Take a server out of mcp.json (and its headers out of the keys file)."""
    from chatapp.tools.mcp_config import mcp_file, remove_server, store_secret_headers

    removed = remove_server(name)
    forgot = store_secret_headers(name, None) is not None
    if not removed and not forgot:
        raise NotFoundError(f"mcp rm: no server {name!r} in {mcp_file()}")
    _out(f"removed MCP server {name!r}")


@mcp_app.command("list")
def list_servers(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """The servers of mcp.json (nothing is started): name, transport, command or URL, the
    names of its env variables and headers (values are not shown)."""
    from chatapp.config import load_settings
    from chatapp.tools.mcp_config import load_servers, mcp_file

    settings = load_settings()
    entries = load_servers(None, settings.mcp.headers)
    rows = [
        {
            "name": e.name,
            "transport": e.transport,
            "command": [e.command, *e.args] if e.transport == "stdio" else None,
            "cwd": e.cwd,
            "url": e.url or None,
            "env": sorted(e.env),
            "headers": sorted(e.headers),
            "headers_in_keys_file": sorted(settings.mcp.headers.get(e.name, {})),
        }
        for e in entries
    ]
    _literal_secret_warnings(entries)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        _out(f"no MCP servers (add one with chatapp mcp add, or edit {mcp_file()})")
    for entry, row in zip(entries, rows, strict=True):
        extra = [f"env: {', '.join(row['env'])}"] if row["env"] else []
        if row["headers"]:
            extra.append(f"headers: {', '.join(row['headers'])}")
        tail = f"  ({'; '.join(extra)})" if extra else ""
        _out(f"{entry.name}  {entry.transport}  {entry.describe()}{tail}")

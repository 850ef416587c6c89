"""What an MCP server costs a tool call: the round trip of one ``add`` call through the registry
to a real stdio MCP server (and to the same server over Streamable HTTP on loopback), against
the same function called in-process through the same registry, and called bare.

The server is tests/support/mcp_servers.py (the SDK's ``MCPServer``); its ``add`` is the very
function the in-process provider calls. Calls alternate between the three routes in every
round, so a change in the machine's load hits them alike; figures are medians of ``--calls``.
The server's start (spawn, handshake, tool listing) is timed once per transport.

    python benchmarks/tools_mcp.py [--calls 200]

writes benchmarks/results/tools_mcp.json. ``measure`` is importable (benchmarks/tools.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "tools_mcp.json"
SERVERS = ROOT / "tests" / "support" / "mcp_servers.py"


class InProcessAdd:
    """The server's ``add`` as a built-in provider (same schema, same function)."""

    server = "local"

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def specs(self) -> list[Any]:
        from chatapp.domain import ToolSpec

        return [ToolSpec("local.add", "Add two whole numbers.", self.schema, "local", True)]

    def call(self, tool: str, arguments: dict[str, Any], cancel: Any) -> Any:
        from chatapp.tools.registry import ToolOutput
        from tests.support.mcp_servers import add

        return ToolOutput(str(add(**arguments)))

    def close(self) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the HTTP server on port {port} did not come up")


def measure(calls: int = 200) -> dict[str, Any]:
    """Medians in milliseconds: ``stdio_ms``, ``http_ms``, ``in_process_ms`` (through the
    registry), ``bare_us`` (the function alone, µs), the starts, and the ratios."""
    from chatapp.domain import ToolCall
    from chatapp.tools.mcp_client import McpServerTools
    from chatapp.tools.mcp_config import McpServerEntry
    from chatapp.tools.registry import ToolRegistry
    from tests.support.mcp_servers import add

    stdio = McpServerTools(
        McpServerEntry("mcp", "stdio", command=sys.executable, args=(str(SERVERS), "stdio"))
    )
    port = _free_port()
    http_server = subprocess.Popen(
        [sys.executable, str(SERVERS), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    http = McpServerTools(McpServerEntry("web", "http", url=f"http://127.0.0.1:{port}/mcp"))
    try:
        started = time.perf_counter()
        schema = next(s for s in stdio.specs() if s.name == "mcp.add").parameters
        stdio_start = time.perf_counter() - started
        _wait_for_port(port)
        started = time.perf_counter()
        http.specs()
        http_start = time.perf_counter() - started
        registry = ToolRegistry([stdio, http, InProcessAdd(schema)])
        routes = {"stdio": "mcp.add", "http": "web.add", "in_process": "local.add"}
        times: dict[str, list[float]] = {route: [] for route in routes}
        for i in range(calls + 5):
            for route, name in routes.items():
                call = ToolCall(id=str(i), name=name, arguments={"a": i, "b": 1})
                t0 = time.perf_counter()
                result = registry.run(call)
                elapsed = time.perf_counter() - t0
                if result.content != str(i + 1):
                    raise RuntimeError(f"{name}: {result.content!r}")
                if i >= 5:  # the first calls warm caches and the schema validator
                    times[route].append(elapsed)
        bare = []
        for i in range(calls):
            t0 = time.perf_counter()
            add(i, 1)
            bare.append(time.perf_counter() - t0)
    finally:
        stdio.close()
        http.close()
        http_server.kill()
        http_server.wait()
    med = {route: statistics.median(values) * 1000 for route, values in times.items()}
    return {
        "calls": calls,
        "stdio_ms": round(med["stdio"], 3),
        "http_ms": round(med["http"], 3),
        "in_process_ms": round(med["in_process"], 3),
        "bare_us": round(statistics.median(bare) * 1e6, 3),
        "stdio_over_in_process": round(med["stdio"] / med["in_process"], 1),
        "stdio_extra_ms": round(med["stdio"] - med["in_process"], 3),
        "stdio_start_s": round(stdio_start, 2),
        "http_start_s": round(http_start, 2),
        "p90_stdio_ms": round(statistics.quantiles(times["stdio"], n=10)[-1] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("CHATAPP_HOME", str(Path("/tmp") / f"chatapp-bench-{os.getpid()}"))
    figures = measure(args.calls)
    figures["machine"] = {
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

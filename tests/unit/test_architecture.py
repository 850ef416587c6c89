"""The package's shape, read from its source: no import circle anywhere in chatapp (type-only
imports included), no import from a lower layer up to a higher one, heavy libraries only where
they belong, and one context budget."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chatapp"

LAYERS = {
    # leaves everyone may import
    "chatapp": 0,
    "chatapp.config": 0,
    "chatapp.paths": 0,
    "chatapp.domain": 0,
    "chatapp.errors": 0,
    "chatapp.terminal_text": 0,
    "chatapp.sqlite_connection": 0,
    "chatapp.context": 0,
    "chatapp.context_sources": 0,
    "chatapp.text": 0,  # language detection, Korean analysis, keyword terms (no chatapp imports)
    # services, each may use those listed above it
    "chatapp.models": 1,  # GGUF files, the catalog, the registry, bundled weights
    "chatapp.storage": 1,
    "chatapp.engine": 2,  # opens models
    "chatapp.embedding": 2,  # sentence embedders (the bundled one from models)
    "chatapp.retrieval": 3,  # ingest, store, search over the user's files
    "chatapp.prompting": 3,  # uses text and embedding; never retrieval (same rank)
    "chatapp.tools": 3,  # the tool registry, built-ins, MCP servers, approval (data in, data out)
    # the turn pipeline
    "chatapp.session": 4,
    "chatapp.evaluation": 5,
    # front ends
    "chatapp.cli": 6,
    "chatapp.ui": 6,
    "chatapp.__main__": 7,
}
FRONT_END_LAUNCHES = {("chatapp.cli", "chatapp.ui")}
"""The CLI may start the UI (``chatapp``, ``chatapp serve``); the UI never imports the CLI."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """chatapp modules ``name`` imports anywhere: module level, in functions, type-only."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        out.update(t for t in targets if t in known and t != name)
    return out


def layer_of(name: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_anywhere_in_chatapp() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_upward_import_between_layers() -> None:
    upward = []
    for name, targets in graph().items():
        layer, rank = layer_of(name)
        for target in targets:
            target_layer, target_rank = layer_of(target)
            if target_layer == layer or (layer, target_layer) in FRONT_END_LAUNCHES:
                continue
            if target_rank >= rank and target_rank > 0:
                upward.append(f"{name} -> {target}")
    assert upward == []


def _third_party(path: Path) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            tops.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def test_heavy_libraries_only_where_they_belong() -> None:
    owners = {
        "textual": "chatapp.ui",
        "textual_serve": "chatapp.ui",
        "llama_cpp": "chatapp.engine",
        "mcp": "chatapp.tools",
    }
    misplaced = [
        f"{name} imports {lib}"
        for name, path in modules().items()
        for lib in _third_party(path)
        if lib in owners and not (name == owners[lib] or name.startswith(owners[lib] + "."))
    ]
    assert misplaced == []


def test_one_context_budget() -> None:
    """Only chatapp/context.py decides what fits: nobody else computes a reply reserve."""
    users = [
        name
        for name, path in modules().items()
        if name != "chatapp.context" and "reply_reserve(" in path.read_text(encoding="utf-8")
    ]
    assert users == []


def test_retrieval_stages_import_only_downward() -> None:
    """ingest and search both build on store; neither imports the other, and store neither."""
    below = {
        "chatapp.retrieval.ingest": {"chatapp.retrieval.store"},
        "chatapp.retrieval.search": {"chatapp.retrieval.store"},
        "chatapp.retrieval.store": set(),
    }

    def stage(name: str) -> str | None:
        return next((s for s in below if name == s or name.startswith(s + ".")), None)

    crossing = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        for target in targets
        if (own := stage(name)) is not None
        and (other := stage(target)) not in (None, own)
        and other not in below[own]
    ]
    assert crossing == []

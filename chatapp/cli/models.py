"""``chatapp models``: list, pull, search, add, inspect, remove and choose chat models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from chatapp.terminal_text import for_stream

models_app = typer.Typer(
    help="Chat models: the bundled one, the catalog, downloads from Hugging Face, local files.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


def _console(stderr: bool = False):  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, stderr=stderr)


def _gb(value: int | None) -> str:
    return "" if value is None else f"{value / 1e9:.1f} GB"


def _default_model() -> str:
    from chatapp.config import load_settings

    return load_settings().model.name


@models_app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Installed models and the catalog, with a fit hint for this machine (* = the default)."""
    from chatapp.models.hardware import machine_memory
    from chatapp.models.listing import model_rows

    memory = machine_memory()
    default = _default_model()
    rows = model_rows(default, memory)
    if as_json:
        payload = {
            "default": default,
            "machine": {
                "total_ram": memory.total_ram,
                "available_ram": memory.available_ram,
                "gpus": [g.__dict__ for g in memory.gpus],
            },
            "models": [r.to_dict() for r in rows],
        }
        print(json.dumps(payload, ensure_ascii=False))
        return
    table = models_table(rows)
    console = _console()
    console.print(table)
    console.print(
        f"[dim]* default · size, RAM in GB · ko: Korean listed as supported\n{memory.describe()}\n"
        "download: chatapp models pull NAME[:Q8_0] · choose: chatapp models use NAME[/]"
    )


_STATUS = {"downloaded": "pulled", "missing": "MISSING", "available": "-"}
"""What the status column says (bundled and added say so themselves): at most 7 cells."""


def models_table(rows: list[Any]) -> Any:
    """``models list`` as a Rich table that fits 80 columns: the default is marked after its
    name, sizes are in GB without the unit, and a name too long for the width wraps (every
    other column keeps its full text, so the fit and Korean columns are never cut off)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("name", overflow="fold")
    for column in ("status", "quant", "size", "RAM", "fit", "ctx", "ko"):
        numeric = column in ("size", "RAM", "ctx")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    for r in rows:
        fit_style = {"fits": "green", "tight": "yellow", "too big": "red"}.get(r.fit or "", "")
        status = r.source if r.status == "installed" else r.status
        # A name from an added file is the user's text: shown as text, never as Rich markup.
        name = escape(for_stream(r.name, sys.stdout)) + (" *" if r.default else "")
        table.add_row(
            name,
            _STATUS.get(status, status),
            r.quant or "",
            _short_gb(r.size_bytes),
            _short_gb(r.ram_bytes),
            f"[{fit_style}]{r.fit}[/]" if r.fit else "",
            f"{r.context // 1024}K" if r.context else "",
            "한" if r.korean else "",
        )
    return table


def _short_gb(value: int | None) -> str:
    return "" if value is None else f"{value / 1e9:.1f}"


@models_app.command("pull")
def pull(
    spec: Annotated[
        str, typer.Argument(metavar="NAME | REPO[:FILE|QUANT]", help="Catalog name or hub repo.")
    ],
) -> None:
    """Download a model from Hugging Face (resumable, sha256-verified) and install it."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from chatapp.models.download import plan_pull, pull_model
    from chatapp.models.registry import find_installed

    err = _console(stderr=True)
    plan = plan_pull(spec)
    existing = find_installed(plan.name)
    if existing and not existing.missing and existing.sha256 == plan.sha256:
        print(f"{plan.name} is already installed ({existing.path})")
        return
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("download", total=plan.size, start=False)

        def on_progress(done: int, total: int) -> None:
            if not progress.tasks[task].started:  # first call: the disk check has passed
                resumed = f", resuming at {done / 1e9:.2f} GB" if done else ""
                progress.console.print(
                    f"{plan.repo}/{plan.filename}: {plan.size / 1e9:.2f} GB{resumed}",
                    soft_wrap=True,
                )
                progress.start_task(task)
            progress.update(task, completed=done, total=total)

        model = pull_model(spec, on_progress=on_progress, plan=plan)
    print(f"installed {model.name} ({model.path}); sha256 verified")
    print(f"use it: chatapp models use {model.name}")


@models_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Words to look for in repo names.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the Hugging Face Hub for repos with GGUF files."""
    from chatapp.models.hub import search_gguf_repos

    hits = search_gguf_repos(query, limit=limit)
    if as_json:
        print(json.dumps([h.__dict__ for h in hits], ensure_ascii=False))
        return
    if not hits:
        print(f"no GGUF repos match {query!r}")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("repo", "downloads", "likes", "updated"):
        table.add_column(column, justify="left" if column == "repo" else "right")
    for h in hits:
        # Repo names come from the hub: shown as text (no Rich markup, no terminal controls).
        repo = escape(for_stream(h.repo, sys.stdout))
        table.add_row(repo, f"{h.downloads or 0:,}", str(h.likes or 0), h.updated or "")
    _console().print(table)
    print("download one: chatapp models pull REPO[:QUANT]")


@models_app.command("add")
def add(
    path: Annotated[Path, typer.Argument(help="A .gguf file; it stays where it is.")],
    name: Annotated[str | None, typer.Option("--name", help="Name to use it by.")] = None,
) -> None:
    """Register a local GGUF file (its header is checked first)."""
    from chatapp.models.registry import add_local_model

    model = add_local_model(path, name)
    print(f"added {model.name} ({model.path}); use it: chatapp models use {model.name}")


def _info_payload(spec: str) -> dict[str, Any]:
    from chatapp.engine.model_identity import file_sha256
    from chatapp.models.gguf import read_gguf_info
    from chatapp.models.registry import find_installed, resolve_model_path

    path = resolve_model_path(spec)
    info = read_gguf_info(path)
    model = find_installed(spec)
    sha = model.sha256 if model and model.sha256 else file_sha256(path)
    thinking = _template_of(path, info).thinking
    return {
        "name": model.name if model else path.stem,
        "path": str(path),
        "source": model.source if model else "path",
        "repo": model.repo if model else None,
        "architecture": info.architecture,
        "model_name": info.name,
        "parameters": info.parameters,
        "parameters_label": info.parameters_label,
        "quant": info.quant,
        "context_length": info.context_length,
        "chat_template": info.chat_template is not None,
        "thinking": {
            "thinks": thinking.thinks,
            "format": thinking.format.name if thinking.format else None,
            "switch": thinking.switch,
            "default_on": thinking.default_on if thinking.thinks else None,
            "efforts": list(thinking.efforts),
        },
        "korean": _speaks_korean(model.name if model else None, path),
        "file_size": info.file_size,
        "gguf_version": info.version,
        "sha256": sha,
    }


def _template_of(path: Path, info: Any = None) -> Any:
    """The chat template LlamaCppBackend would use for this GGUF (read without loading it)."""
    from chatapp.engine.chat_formats import select_template
    from chatapp.models.gguf import read_gguf_info

    info = info or read_gguf_info(path)
    return select_template(
        info.chat_template,
        architecture=info.architecture,
        name=info.name or path.stem,
        bos_token=info.bos_token,
        eos_token=info.eos_token,
        vocab_size=info.vocab_size,
    )


def _speaks_korean(name: str | None, path: Path) -> bool | None:
    from chatapp.models.catalog import speaks_korean

    known = speaks_korean(name) if name else None
    return known if known is not None else speaks_korean(path)


@models_app.command("info")
def info(
    name: Annotated[str, typer.Argument(help="Installed name, or a path to a .gguf.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Architecture, parameters, quantization, context length, chat template, whether the model
    thinks (and what switches it), Korean, sha256."""
    payload = _info_payload(name)
    if as_json:
        print(json.dumps(payload, ensure_ascii=False))
        return
    labels = {
        "name": "name",
        "path": "file",
        "source": "source",
        "repo": "repo",
        "architecture": "architecture",
        "parameters_label": "parameters",
        "quant": "quantization",
        "context_length": "trained context",
        "chat_template": "chat template",
        "thinking": "thinks",
        "korean": "Korean",
        "file_size": "size",
        "sha256": "sha256",
    }
    for key, label in labels.items():
        value = payload[key]
        if key == "korean" and value is None:
            print(f"{label:>16}  unknown (not in the catalog; the file names no languages)")
            continue
        if value is None:
            continue
        if key == "file_size":
            value = _gb(value)
        elif key == "chat_template":
            value = "yes (in the GGUF)" if value else "no (a fallback format is used)"
        elif key == "thinking":
            value = _template_of(Path(payload["path"])).thinking.describe()
        elif key == "korean":
            value = "yes (listed as supported)" if value else "not listed as supported"
        elif key == "context_length":
            value = f"{value:,} tokens"
        print(f"{label:>16}  {value}")


@models_app.command("rm")
def remove(name: Annotated[str, typer.Argument(help="Installed model name.")]) -> None:
    """Remove a model: a downloaded file is deleted, an added file is only forgotten."""
    from chatapp.models.registry import remove_model

    model = remove_model(name)
    what = "deleted" if model.source == "downloaded" else "forgot (file left in place)"
    print(f"{what} {model.name} ({model.path})")
    if _default_model().lower() == model.name.lower():
        print(
            f"note: {model.name} was the default model; choose another with "
            "`chatapp models use NAME`",
            file=sys.stderr,
        )


@models_app.command("use")
def use(name: Annotated[str, typer.Argument(help="Installed name, or a path to a .gguf.")]) -> None:
    """Make a model the default for chats (saved in config.toml)."""
    from chatapp.config import load_settings, save_settings
    from chatapp.models.hardware import memory_warning
    from chatapp.models.registry import looks_like_path, resolve_model_path

    path = resolve_model_path(name)
    settings = load_settings()
    settings.model.name = str(path.resolve()) if looks_like_path(name) else name
    saved = save_settings(settings)
    print(f"default model: {settings.model.name} (saved in {saved})")
    warning = memory_warning(path, settings.model.n_ctx)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


@models_app.command("template")
def template(
    name: Annotated[str, typer.Argument(help="Installed name, or a path to a .gguf.")],
) -> None:
    """Print the exact prompt text the model receives for a sample conversation."""
    from chatapp.engine.chat_formats import SAMPLE_CONVERSATION
    from chatapp.models.registry import resolve_model_path

    path = resolve_model_path(name)
    # The same selection LlamaCppBackend makes when it loads the model, without loading it.
    chosen = _template_of(path)
    source = "the GGUF's own template" if chosen.name == "gguf" else f"fallback: {chosen.name}"
    print(f"# {path.name} — {source}", file=sys.stderr)
    # A downloaded GGUF's template is someone else's text: no terminal controls from it.
    sys.stdout.write(for_stream(chosen.render(SAMPLE_CONVERSATION), sys.stdout))
    sys.stdout.write("\n")

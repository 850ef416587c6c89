"""CLI flags shared by several commands, and turning them into settings overrides."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chatapp.config import Settings, load_settings
from chatapp.errors import UsageError

ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model name (chatapp models list) or GGUF path.")
]
BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help="llama_cpp (in-process, default), openai (a server), or fake."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1."),
]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", help="API key for --base-url.")]
ContextOpt = Annotated[int | None, typer.Option("--n-ctx", help="Context size in tokens.")]
ThinkingOpt = Annotated[
    str | None,
    typer.Option(
        "--thinking", help="on / off: let a thinking model reason before it answers (if it can)."
    ),
]
ShowThinkingOpt = Annotated[
    bool, typer.Option("--show-thinking", help="Print a thinking model's reasoning (on stderr).")
]


def thinking_override(value: str | None) -> dict[str, str]:
    """``--thinking on|off`` as a per-turn generation override."""
    if value is None:
        return {}
    if value not in ("on", "off", "default"):
        raise UsageError(f"--thinking {value!r}: choose on or off")
    return {"thinking": value}


def settings_from_flags(
    *,
    model: str | None = None,
    backend: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    n_ctx: int | None = None,
    system: str | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    max_tokens: int | None = None,
) -> Settings:
    """Settings with CLI flags laid over config.toml and CHATAPP_* variables."""
    overrides: dict[str, Any] = {
        "model": {"n_ctx": n_ctx},
        "backend": {"kind": backend, "base_url": base_url, "api_key": api_key},
        "generation": {"temperature": temperature, "seed": seed, "max_tokens": max_tokens},
        "chat": {"system_prompt": system},
    }
    if model is not None:
        # With a server backend --model names the server's model; in-process, a GGUF.
        if backend == "openai":
            overrides["backend"]["model"] = model
        else:
            overrides["model"]["name"] = model
    settings = load_settings(_strip_none(overrides))
    if model is not None and backend is None and settings.backend.kind == "openai":
        # An override like the others (not an edit), so saving these settings never writes it.
        overrides["backend"]["model"] = model
        settings = load_settings(_strip_none(overrides))
    return settings


def _strip_none(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            inner = _strip_none(value)
            if inner:
                out[key] = inner
        elif value is not None:
            out[key] = value
    return out


def resolve_conversation(store: Any, conversation: int | None, continue_: bool) -> int | None:
    """The conversation ``--conversation ID`` / ``--continue`` name (checked before any model
    loads, so an unknown id fails fast)."""
    if conversation is not None and continue_:
        raise UsageError("--conversation and --continue: give only one")
    conversation_id = conversation
    if continue_:
        latest = store.latest_conversation()
        conversation_id = latest.id if latest else None
    if conversation_id is not None:
        store.get_conversation(conversation_id)
    return conversation_id

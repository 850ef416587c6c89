"""``chatapp cache``: what chatapp keeps to be faster, and emptying it.

The warm-resume cache holds the model's KV state of recent conversations (see
chatapp.engine.kv_state_cache), bounded by ``model.kv_cache_mb``; deleting it loses nothing but
speed: the next follow-up reads its conversation again.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

cache_app = typer.Typer(
    help="The warm-resume cache (saved model states of recent conversations).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@cache_app.command("info")
def info(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Where the cache is, how much it holds, and its limit."""
    from chatapp.config import load_settings
    from chatapp.engine.kv_state_cache import cache_size, states_dir

    files, size = cache_size()
    limit = load_settings().model.kv_cache_mb * 2**20
    if as_json:
        print(json.dumps({"path": str(states_dir()), "states": files, "bytes": size,
                          "limit_bytes": limit}))  # fmt: skip
        return
    print(f"{files} saved state(s), {_size(size)} of {_size(limit)} at {states_dir()}")


@cache_app.command("clear")
def clear() -> None:
    """Delete every saved model state (follow-ups then read their conversation again)."""
    from chatapp.engine.kv_state_cache import clear as clear_states

    files, size = clear_states()
    print(f"deleted {files} saved state(s), {_size(size)}")

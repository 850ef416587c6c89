"""``chatapp`` (the chat UI) and ``chatapp ask`` (one turn from the shell, streamed to stdout)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from chatapp.cli.options import (
    ApiKeyOpt,
    BackendOpt,
    BaseUrlOpt,
    ContextOpt,
    ModelOpt,
    settings_from_flags,
)
from chatapp.errors import UsageError


def register(app: typer.Typer) -> None:
    app.callback(invoke_without_command=True)(open_chat)
    app.command("ask")(ask)


def open_chat(
    ctx: typer.Context,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    conversation: Annotated[
        int | None, typer.Option("--conversation", "-c", help="Open this conversation.")
    ] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Open the chat (terminal UI). Run `chatapp COMMAND --help` for the other commands."""
    if version:
        from chatapp import __version__

        print(f"chatapp {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_from_flags(model=model, backend=backend, base_url=base_url, api_key=api_key)
    from chatapp.ui.app import run_app

    run_app(settings, conversation_id=conversation)


def read_prompt(prompt: list[str] | None) -> str:
    """The prompt words, then whatever is piped on stdin (``-`` or any non-terminal stdin)."""
    words = list(prompt or [])
    want_stdin = "-" in words
    words = [w for w in words if w != "-"]
    text = " ".join(words).strip()
    piped = ""
    if want_stdin or not sys.stdin.isatty():
        try:
            piped = sys.stdin.read()
        except (OSError, ValueError):
            piped = ""
    if piped.strip():
        text = f"{text}\n\n{piped.strip()}" if text else piped.strip()
    if not text.strip():
        raise UsageError("empty prompt: give the prompt as an argument or pipe text on stdin")
    return text


def ask(
    prompt: Annotated[
        list[str] | None,
        typer.Argument(help="The prompt. Text piped on stdin (or `-`) is appended to it."),
    ] = None,
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", "-t")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for a reproducible reply.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", "-n")] = None,
    conversation: Annotated[
        int | None, typer.Option("--conversation", help="Continue conversation ID.")
    ] = None,
    continue_: Annotated[
        bool, typer.Option("--continue", help="Continue the most recent conversation.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object at the end.")
    ] = False,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    n_ctx: ContextOpt = None,
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-C", help="Answer from this document collection, citing it."),
    ] = None,
) -> None:
    """Ask one question; the reply streams to stdout and the turn is kept in the history."""
    if conversation is not None and continue_:
        raise UsageError("--conversation and --continue: give only one")
    text = read_prompt(prompt)
    settings = settings_from_flags(
        model=model,
        backend=backend,
        base_url=base_url,
        api_key=api_key,
        n_ctx=n_ctx,
        system=system,
        temperature=temperature,
        seed=seed,
        max_tokens=max_tokens,
    )
    from chatapp.engine.factory import create_backend, generation_params
    from chatapp.session import ChatSession
    from chatapp.storage import open_store

    store = open_store()
    conversation_id = conversation
    if continue_:
        latest = store.latest_conversation()
        conversation_id = latest.id if latest else None
    if conversation_id is not None:
        store.get_conversation(conversation_id)  # unknown id → clear error before loading a model
    if collection is not None:
        from chatapp.cli.grounded_ask import check_collection

        check_collection(collection, settings)  # likewise for an unknown collection
    engine = create_backend(settings)
    session = ChatSession(
        engine,
        store,
        conversation_id=conversation_id,
        system_prompt=system
        if system is not None
        else (None if conversation_id is not None else settings.chat.system_prompt),
        params=generation_params(settings),
    )
    if collection is not None:
        from chatapp.cli.grounded_ask import run_grounded_turn

        result = run_grounded_turn(
            session, text, collection, settings, stream_to_stdout=not as_json
        )
    else:
        result = run_turn(session, text, stream_to_stdout=not as_json)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))


def run_turn(
    session: Any, text: str, *, stream_to_stdout: bool, options: Any = None
) -> dict[str, Any]:
    """Send one turn, stream it, and return the ``ask --json`` object.

    Ctrl+C stops generation: the session saves the partial reply as interrupted, and the
    KeyboardInterrupt reaches main(), which exits 130.
    """
    from chatapp.domain import TokenEvent
    from chatapp.session import TurnFinished, TurnStarted

    pieces: list[str] = []
    finished: TurnFinished | None = None
    for event in session.send(text, options):
        if isinstance(event, TokenEvent):
            pieces.append(event.text)
            if stream_to_stdout:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        elif isinstance(event, TurnStarted) and event.plan.dropped_messages:
            print(
                f"note: {event.plan.dropped_messages} earlier message(s) left out to fit the "
                f"context ({event.plan.n_ctx} tokens)",
                file=sys.stderr,
            )
        elif isinstance(event, TurnFinished):
            finished = event
    reply = "".join(pieces)
    if stream_to_stdout and not reply.endswith("\n"):
        sys.stdout.write("\n")
        sys.stdout.flush()
    assert finished is not None
    if finished.error:
        print(f"error: {finished.error}", file=sys.stderr)
    stats = finished.stats
    return {
        "text": reply,
        "conversation_id": finished.message.conversation_id,
        "message_id": finished.message.id,
        "model": session.backend.identity.name,
        "finish_reason": finished.finish_reason,
        "stats": {
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "ttft_s": round(stats.ttft_s, 4),
            "decode_tokens_per_s": round(stats.decode_tokens_per_s, 2),
            "cached_tokens": stats.cached_tokens,
            "dropped_messages": stats.dropped_messages,
        },
    }

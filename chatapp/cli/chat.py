"""``chatapp`` (the chat UI) and ``chatapp ask`` (one turn from the shell, streamed to stdout)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chatapp.cli.options import (
    ApiKeyOpt,
    BackendOpt,
    BaseUrlOpt,
    ContextOpt,
    ModelOpt,
    ShowThinkingOpt,
    ThinkingOpt,
    resolve_conversation,
    settings_from_flags,
    thinking_override,
)
from chatapp.cli.tool_use import (
    AllowAllToolsOpt,
    AllowToolOpt,
    MaxStepsOpt,
    ToolChoiceOpt,
    ToolsOpt,
    tool_selection,
    tool_use_for_ask,
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
        from chatapp.cli.stdin_text import read_stdin_text

        piped = read_stdin_text()  # bytes that are not UTF-8: a one-line error, exit 2
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
        int | None, typer.Option("--conversation", "-c", help="Continue conversation ID.")
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
    template: Annotated[
        str | None,
        typer.Option("--template", "-T", help="Send the prompt through this prompt template."),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", "-v", help="A template variable as NAME=VALUE (@file reads a file)."),
    ] = None,
    thinking: ThinkingOpt = None,
    show_thinking: ShowThinkingOpt = False,
    tools: ToolsOpt = None,
    tool_choice: ToolChoiceOpt = None,
    allow_tool: AllowToolOpt = None,
    allow_all_tools: AllowAllToolsOpt = False,
    max_steps: MaxStepsOpt = None,
) -> None:
    """Ask one question; the reply streams to stdout and the turn is kept in the history."""
    selection = tool_selection(tools)
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
    from chatapp.cli.template_run import parse_vars
    from chatapp.cli.turn_output import ask_json, print_json, print_turn
    from chatapp.engine.factory import create_backend
    from chatapp.session import ChatSession, TemplateCall, TurnRequest
    from chatapp.session.preparation import check_template
    from chatapp.storage import open_store

    request = TurnRequest(
        text,
        template=TemplateCall(template, parse_vars(var)) if template else None,
        collection=collection,
        params=thinking_override(thinking),
        tools=selection,
        tool_choice=tool_choice,
    )
    store = open_store()
    conversation_id = resolve_conversation(store, conversation, continue_)
    session = ChatSession.from_settings(
        settings, lambda: create_backend(settings), store, conversation_id=conversation_id,
        system_prompt=system,
    )  # fmt: skip
    if collection is not None and session.retriever is not None:
        session.retriever.check(collection)  # an unknown collection fails before the model loads
    check_template(request)  # likewise an unknown template or a wrong variable
    if selection or (selection is None and settings.tools.offered):
        retriever = session.retriever
        session.tools = tool_use_for_ask(
            settings,
            allow=allow_tool,
            allow_all=allow_all_tools,
            max_steps=max_steps,
            search_collection=collection,
            retrieve=retriever.retrieve if retriever is not None else None,
            reading_stdin=not sys.stdin.isatty(),
        )
    elif tool_choice not in (None, "none", "auto"):
        raise UsageError(f"--tool-choice {tool_choice}: no tools are offered (use --tools)")
    try:
        result = print_turn(session, request, stream=not as_json, show_thinking=show_thinking)
    finally:
        if session.tools is not None:
            session.tools.close()
        session.close()
    if as_json:
        print_json(ask_json(result))
    if result.finish_reason == "error":  # the reply failed (a server lost mid-reply…): said above
        raise typer.Exit(3 if settings.backend.kind == "openai" else 1)

"""``chatapp history``: list, show, search, export and delete stored conversations.

Stored text printed to a terminal has its control characters shown escaped (a reply or a
pasted document can hold ESC sequences); to a file or a pipe it goes out exactly as stored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from chatapp.errors import UsageError
from chatapp.terminal_text import for_stream

history_app = typer.Typer(
    help="Every conversation is kept: list, show, search, export and delete them.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(history_app, name="history")


def _store():
    from chatapp.storage import open_store

    return open_store()


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


@history_app.command("list")
def list_conversations(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Conversations, newest first."""
    conversations = _store().list_conversations(limit=limit)
    if as_json:
        print(json.dumps([c.__dict__ for c in conversations], ensure_ascii=False))
        return
    if not conversations:
        print("no conversations yet — start one with `chatapp` or `chatapp ask`")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("id", "updated", "msgs", "title"):
        table.add_column(column, justify="right" if column in ("id", "msgs") else "left")
    for c in conversations:
        title = escape(for_stream(c.title, sys.stdout))  # a title is text, never Rich markup
        table.add_row(str(c.id), c.updated_at[:16].replace("T", " "), str(c.message_count), title)
    _console().print(table)


@history_app.command("show")
def show(
    conversation_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="All branches, every field.")] = False,
) -> None:
    """Print a conversation (its active branch)."""
    from chatapp.storage.export import export_json, export_markdown

    store = _store()
    text = (
        export_json(store, conversation_id) if as_json else export_markdown(store, conversation_id)
    )
    print(for_stream(text, sys.stdout))


@history_app.command("search")
def search(
    query: Annotated[list[str], typer.Argument(help="Words to find (prefix match).")],
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Full-text search over every message."""
    text = " ".join(query)
    if not text.strip():
        raise UsageError("empty search: give one or more words")
    hits = _store().search(text, limit=limit)
    if as_json:
        print(json.dumps([h.__dict__ for h in hits], ensure_ascii=False))
        return
    if not hits:
        print(f"no messages match {text!r}")
        return
    console = _console()
    from rich.markup import escape

    for hit in hits:
        title = escape(for_stream(hit.title, sys.stdout))
        console.print(
            f"[bold]{hit.conversation_id}[/] {title}  [dim]({hit.role}, message "
            f"{hit.message_id})[/]",
            markup=True,
        )
        console.print(f"    {for_stream(hit.snippet, sys.stdout)}", markup=False)


@history_app.command("export")
def export(
    conversation_id: Annotated[int, typer.Argument(metavar="ID")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="md or json.")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Export a conversation as Markdown (active branch) or JSON (all branches)."""
    from chatapp.storage.export import export_json, export_markdown, write_export

    if fmt not in ("md", "json"):
        raise UsageError(f"--format {fmt!r}: use md or json")
    store = _store()
    text = (
        export_markdown(store, conversation_id)
        if fmt == "md"
        else export_json(store, conversation_id)
    )
    if output is None:
        text = for_stream(text, sys.stdout)
        print(text, end="" if text.endswith("\n") else "\n")
        return
    print(f"wrote {write_export(text, output)} (readable only by you)")


@history_app.command("rm")
def remove(conversation_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Delete a conversation and all its messages (nothing of them stays in the database or in
    the warm-resume cache)."""
    from chatapp.session.deletion import delete_conversation

    deleted = delete_conversation(_store(), conversation_id)
    print(f"deleted conversation {conversation_id} ({for_stream(deleted.title, sys.stdout)})")

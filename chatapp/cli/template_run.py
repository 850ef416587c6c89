"""``chatapp run NAME [INPUT | -]``: run one prompt template on a text, a file or stdin."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from chatapp.cli.options import (
    ApiKeyOpt,
    BackendOpt,
    BaseUrlOpt,
    ContextOpt,
    ModelOpt,
    ShowThinkingOpt,
    ThinkingOpt,
    thinking_override,
)
from chatapp.errors import UsageError

VarOpt = Annotated[
    list[str] | None,
    typer.Option("--var", "-v", help="A variable as NAME=VALUE (VALUE @file reads a file)."),
]
ShotsOpt = Annotated[
    int | None, typer.Option("--shots", "-k", min=0, help="How many few-shot examples.")
]
SelectOpt = Annotated[
    str | None, typer.Option("--select", help="Example selection: fixed, random or similar.")
]
ExamplesOpt = Annotated[
    Path | None,
    typer.Option("--examples", help="More examples: a JSONL file of {input, output} objects."),
]


def parse_vars(items: list[str] | None) -> dict[str, str]:
    """``NAME=VALUE`` pairs; ``NAME=@path`` reads the value from a file."""
    values: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var {item!r}: write NAME=VALUE")
        if value.startswith("@") and len(value) > 1:
            values[name.strip()] = _read_text_file(Path(value[1:]), f"--var {name.strip()}")
        else:
            values[name.strip()] = value
    return values


def _read_text_file(path: Path, what: str) -> str:
    from chatapp.cli.stdin_text import read_text_file

    try:
        # Capped: `--var passage=@/dev/zero` is one line, not a read until memory runs out.
        return read_text_file(path, f"{what}: file {path}")
    except FileNotFoundError:
        raise UsageError(f"{what}: file {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{what}: file {path}: is a folder") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what}: file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{what}: file {path}: {exc.strerror}") from None


# One word ending in a file extension (a letter first, so "3.14" or "e.g." are not one).
_FILE_NAME = re.compile(r"[^\s/]+\.[A-Za-z][A-Za-z0-9]{0,7}")


def looks_like_path(value: str) -> bool:
    """One word with a ``/`` or a file extension (``notes.md``, ``~/a/b``): what a user types
    to name a file, and would not type as the text to work on."""
    word = value.strip()
    if not word or any(c.isspace() for c in word) or len(word) > 4096:
        return False
    return "/" in word or os.sep in word or _FILE_NAME.fullmatch(word) is not None


def read_input(value: str | None, *, literal: bool = False) -> str | None:
    """The input: ``-`` reads stdin, an existing file path reads the file, other text is used
    as written; with no argument, text piped on stdin is used. A word that looks like a path
    (``looks_like_path``) but names no file is a UsageError rather than text to summarise;
    ``literal`` (``--text``) takes the argument as text whatever it looks like."""
    if value == "-" or (value is None and not _stdin_is_terminal()):
        from chatapp.cli.stdin_text import read_stdin_text

        text = read_stdin_text()  # bytes that are not UTF-8: a one-line error, exit 2
        return text if text.strip() or value == "-" else None
    if value is None or literal:
        return value
    candidate = Path(value).expanduser()
    if len(value) < 4096 and "\n" not in value and candidate.is_file():
        return _read_text_file(candidate, "input")
    if looks_like_path(value):
        problem = "is a folder" if candidate.is_dir() else "no such file"
        raise UsageError(f"input {value}: {problem} (to use it as text, add --text)")
    return value


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is None or sys.stdin.isatty()
    except (OSError, ValueError):
        return True


def load_examples_file(path: Path | None) -> list[Any]:
    """Examples from a JSONL file of ``{"input", "output", "reasoning"?}`` objects."""
    from pydantic import ValidationError

    from chatapp.prompting.schema import Example

    if path is None:
        return []
    examples = []
    for number, line in enumerate(_read_text_file(path, "--examples").splitlines(), 1):
        if not line.strip():
            continue
        try:
            examples.append(Example.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            reason = (
                exc.msg
                if isinstance(exc, json.JSONDecodeError)
                else (exc.errors()[0]["msg"] + f" ({'.'.join(map(str, exc.errors()[0]['loc']))})")
            )
            raise UsageError(f"--examples {path} line {number}: {reason}") from None
    return examples


def run_template(
    name: Annotated[str, typer.Argument(help="Template name (chatapp templates list).")],
    input_: Annotated[
        str | None,
        typer.Argument(metavar="[INPUT | -]", help="Text, a file path, or - for stdin."),
    ] = None,
    var: VarOpt = None,
    literal: Annotated[
        bool,
        typer.Option("--text", help="INPUT is the text itself, even when it looks like a path."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print {template, output, parsed, reasoning, stats}.")
    ] = False,
    shots: ShotsOpt = None,
    select: SelectOpt = None,
    no_constraint: Annotated[
        bool, typer.Option("--no-constraint", help="Do not constrain the output (no grammar).")
    ] = False,
    examples: ExamplesOpt = None,
    show_prompt: Annotated[
        bool,
        typer.Option("--show-prompt", help="Print the exact prompt the model gets, and stop."),
    ] = False,
    no_save: Annotated[
        bool, typer.Option("--no-save", help="Do not keep this run in the history.")
    ] = False,
    conversation: Annotated[
        int | None, typer.Option("--conversation", "-c", help="Run it in conversation ID.")
    ] = None,
    continue_: Annotated[
        bool, typer.Option("--continue", help="Run it in the most recent conversation.")
    ] = False,
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-C", help="Answer from this document collection, citing it."),
    ] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", "-t")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", "-n", min=1)] = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    n_ctx: ContextOpt = None,
    thinking: ThinkingOpt = None,
    show_thinking: ShowThinkingOpt = False,
) -> None:
    """Run a prompt template; the reply streams to stdout (notes go to stderr) and the run is
    kept in the history like any chat (``--no-save`` leaves no trace)."""
    from chatapp.cli.options import resolve_conversation, settings_from_flags
    from chatapp.cli.turn_output import print_json, print_turn, run_json
    from chatapp.engine.factory import create_backend
    from chatapp.session import ChatSession, TemplateCall, TurnRequest
    from chatapp.session.preparation import check_template
    from chatapp.storage import open_store

    overrides = {"temperature": temperature, "seed": seed, "max_tokens": max_tokens}
    request = TurnRequest(
        read_input(input_, literal=literal) or "",
        template=TemplateCall(
            name,
            parse_vars(var),
            shots=shots,
            select=select,
            constrain=False if no_constraint else None,
            extra_examples=[e.model_dump(exclude_none=True) for e in load_examples_file(examples)],
        ),
        collection=collection,
        params={k: v for k, v in overrides.items() if v is not None} | thinking_override(thinking),
        store=not no_save and not show_prompt,
    )
    check_template(request)  # before loading a model, so a typo fails fast
    settings = settings_from_flags(
        model=model, backend=backend, base_url=base_url, api_key=api_key, n_ctx=n_ctx
    )
    store = open_store()
    conversation_id = resolve_conversation(store, conversation, continue_)
    engine = create_backend(settings)
    try:
        session = ChatSession.from_settings(
            settings, engine, store, conversation_id=conversation_id
        )
        if show_prompt:
            prepared = session.prepare(request, session.leaf_id())
            for note in prepared.notes:
                print(f"note: {note}", file=sys.stderr)
            if prepared.plan is None:
                print(prepared.refusal or "")
            else:
                print(engine.format_chat(prepared.plan.messages), end="")
            return
        result = print_turn(session, request, stream=not as_json, show_thinking=show_thinking)
    finally:
        engine.close()
    if as_json:
        print_json(run_json(result))

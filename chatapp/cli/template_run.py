"""``chatapp run NAME [INPUT | -]``: run one prompt template on a text, a file or stdin."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from chatapp.cli.options import ApiKeyOpt, BackendOpt, BaseUrlOpt, ContextOpt, ModelOpt
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
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what}: file {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{what}: file {path}: is a folder") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what}: file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{what}: file {path}: {exc.strerror}") from None


def read_input(value: str | None) -> str | None:
    """The input: ``-`` reads stdin, an existing file path reads the file, other text is used
    as written; with no argument, text piped on stdin is used."""
    if value == "-" or (value is None and not _stdin_is_terminal()):
        try:
            text = sys.stdin.read()
        except (OSError, ValueError):
            text = ""
        return text if text.strip() or value == "-" else None
    if value is None:
        return None
    candidate = Path(value).expanduser()
    if len(value) < 4096 and "\n" not in value and candidate.is_file():
        return _read_text_file(candidate, "input")
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
    temperature: Annotated[float | None, typer.Option("--temperature", "-t")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", "-n", min=1)] = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    n_ctx: ContextOpt = None,
) -> None:
    """Run a prompt template; the reply streams to stdout (notes go to stderr)."""
    from chatapp.cli.options import settings_from_flags
    from chatapp.prompting.loader import get_template
    from chatapp.prompting.render import resolve_variables
    from chatapp.prompting.schema import INPUT

    template = get_template(name)
    variables = parse_vars(var)
    extra = load_examples_file(examples)
    text = read_input(input_)
    needs_input = INPUT in template.all_variables()
    if needs_input and (text is None or not text.strip()):
        raise UsageError(
            f"template {template.name!r}: no input (give text, a file path, or - for stdin)"
        )
    # Check variables before loading a model, so a typo fails fast.
    resolve_variables(template, variables, text if needs_input else None)
    settings = settings_from_flags(
        model=model, backend=backend, base_url=base_url, api_key=api_key, n_ctx=n_ctx
    )
    from chatapp.engine.factory import create_backend, generation_params
    from chatapp.prompting.turn import build_template_turn

    engine = create_backend(settings)
    try:
        base = generation_params(settings)
        turn = build_template_turn(
            template,
            variables,
            text,
            shots=shots,
            select=select,
            constrain=False if no_constraint else None,
            extra_examples=extra,
            backend=engine,
            max_tokens=max_tokens,
        )
        if turn.system_prompt is None:
            turn.system_prompt = settings.chat.system_prompt or None
        for note in turn.notes:
            print(f"note: {note}", file=sys.stderr)
        if show_prompt:
            print(engine.format_chat(turn.messages()), end="")
            return
        params = turn.generation_params(base).replace(
            temperature=temperature, seed=seed, max_tokens=max_tokens
        )
        result = _generate(engine, turn, params, stream=not as_json)
    finally:
        engine.close()
    if as_json:
        print(json.dumps(result, ensure_ascii=False))


def _generate(engine: Any, turn: Any, params: Any, *, stream: bool) -> dict[str, Any]:
    from chatapp.domain import DoneEvent, TokenEvent

    pieces: list[str] = []
    done: DoneEvent | None = None
    started = time.perf_counter()
    for event in engine.stream_chat(turn.messages(), params):
        if isinstance(event, TokenEvent):
            pieces.append(event.text)
            if stream:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        elif isinstance(event, DoneEvent):
            done = event
    raw = "".join(pieces)
    if stream and not raw.endswith("\n"):
        sys.stdout.write("\n")
        sys.stdout.flush()
    if done is not None and done.error:
        print(f"error: {done.error}", file=sys.stderr)
    parsed = turn.parse(raw)
    if stream:
        if parsed.valid and parsed.value != raw.strip() and not isinstance(parsed.value, dict):
            print(f"answer: {parsed.value}", file=sys.stderr)
        elif not parsed.valid:
            print(
                f"note: output not valid for template {turn.name!r}: {parsed.error}",
                file=sys.stderr,
            )
    stats = done.stats.to_dict() if done is not None else {}
    stats.update(
        total_s=round(time.perf_counter() - started, 4),
        examples=turn.shown_examples - turn.dropped_examples,
        dropped_examples=turn.dropped_examples,
        truncated_input=turn.truncated_input,
        constrained=turn.constrained,
        finish_reason=done.finish_reason if done is not None else None,
    )
    return {
        "template": turn.name,
        "output": parsed.answer,
        "parsed": parsed.value,
        "reasoning": parsed.reasoning,
        "valid": parsed.valid,
        "error": parsed.error,
        "raw": raw,
        "model": engine.identity.name,
        "stats": stats,
    }

"""``chatapp eval NAME… --data FILE.jsonl``: measure templates on your own data, side by side."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from chatapp.cli.options import ApiKeyOpt, BackendOpt, BaseUrlOpt, ContextOpt, ModelOpt
from chatapp.cli.template_run import VarOpt, parse_vars
from chatapp.errors import UsageError

MAX_BAD_LINES_SHOWN = 20


def parse_shots(text: str | None) -> list[int | None]:
    """``"0,4"`` → [0, 4]; none given → the template's own setting."""
    if text is None:
        return [None]
    values: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise UsageError(f"--shots {text!r}: give whole numbers, comma-separated (e.g. 0,4)")
        values.append(int(part))
    return values


def parse_selects(text: str | None) -> list[str | None]:
    from chatapp.prompting.selection import METHODS

    if text is None:
        return [None]
    values: list[str | None] = []
    for part in (p.strip() for p in text.split(",")):
        if part not in METHODS:
            raise UsageError(f"--select {part!r}: unknown (choose {', '.join(METHODS)})")
        values.append(part)
    return values


def parse_field_map(items: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items or []:
        name, sep, source = item.partition("=")
        if not sep or not name.strip() or not source.strip():
            raise UsageError(f"--field {item!r}: write VARIABLE=FIELD (e.g. passage=context)")
        mapping[name.strip()] = source.strip()
    return mapping


def constraint_modes(constraint: str, no_constraint: bool) -> list[bool]:
    if no_constraint:
        return [False]
    modes = {"on": [True], "off": [False], "both": [True, False]}
    if constraint not in modes:
        raise UsageError(f"--constraint {constraint!r}: choose on, off or both")
    return modes[constraint]


def eval_templates(
    names: Annotated[list[str], typer.Argument(help="Template names to compare.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="JSONL file, one item a line.")],
    input_field: Annotated[str, typer.Option("--input-field", help="Field with the input.")] = (
        "text"
    ),
    label_field: Annotated[
        str, typer.Option("--label-field", help="Field with the expected answer.")
    ] = "label",
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="Fill a variable from a field: VARIABLE=FIELD."),
    ] = None,
    var: VarOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N items.")] = None,
    shots: Annotated[
        str | None, typer.Option("--shots", "-k", help="Examples per prompt, e.g. 4 or 0,4.")
    ] = None,
    select: Annotated[
        str | None, typer.Option("--select", help="fixed, random, similar (comma-separated).")
    ] = None,
    constraint: Annotated[
        str, typer.Option("--constraint", help="on, off, or both (compare with and without).")
    ] = "on",
    no_constraint: Annotated[
        bool, typer.Option("--no-constraint", help="Same as --constraint off.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed for every item.")] = 0,
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-C", help="Answer every item from this document collection."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to save the results JSON.")
    ] = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    n_ctx: ContextOpt = None,
) -> None:
    """Run templates over a labelled JSONL file and score them (accuracy/F1, ROUGE, chrF/BLEU,
    EM/F1, invalid-output rate, time per item); every configuration in one table."""
    from chatapp.cli.options import settings_from_flags
    from chatapp.evaluation.dataset import load_eval_file
    from chatapp.evaluation.runner import expand_configs, variable_names
    from chatapp.prompting.loader import get_template

    templates = [get_template(name) for name in dict.fromkeys(names)]
    constants = parse_vars(var)
    unknown_vars = [v for v in constants if v not in variable_names(templates)]
    if unknown_vars:
        raise UsageError(f"--var {unknown_vars[0]}: no template here has that variable")
    field_map = parse_field_map(field)
    configs = expand_configs(
        templates,
        parse_shots(shots),
        parse_selects(select),
        constraint_modes(constraint, no_constraint),
        constants,
    )
    unknown = [v for v in field_map if v not in variable_names(templates)]
    if unknown:
        raise UsageError(f"--field {unknown[0]}: no template here has that variable")
    dataset = load_eval_file(
        data,
        input_field=input_field,
        label_field=label_field,
        field_map=field_map,
        variable_names=variable_names(templates),
        limit=limit,
    )
    _report_bad_lines(dataset)
    settings = settings_from_flags(
        model=model, backend=backend, base_url=base_url, api_key=api_key, n_ctx=n_ctx, seed=seed
    )
    from chatapp.engine.factory import create_backend, generation_params
    from chatapp.retrieval.search.grounding import DocumentRetriever

    retriever = DocumentRetriever(settings)
    if collection is not None:
        retriever.check(collection)  # an unknown collection fails before the model loads
    engine = create_backend(settings)
    try:
        results = _run_with_progress(
            configs,
            dataset,
            engine,
            generation_params(settings),
            system_prompt=settings.chat.system_prompt or None,
            collection=collection,
            retriever=retriever,
            quiet=as_json,
        )
        identity = engine.identity.to_dict()
    finally:
        engine.close()
        retriever.close()
    _finish(
        results,
        dataset,
        identity,
        output,
        as_json,
        seed=seed,
        limit=limit,
        argv={
            "input_field": input_field,
            "label_field": label_field,
            "fields": field_map,
            "collection": collection,
        },
    )


def _report_bad_lines(dataset: Any) -> None:
    for bad in dataset.bad_lines[:MAX_BAD_LINES_SHOWN]:
        print(f"warning: {dataset.path} {bad} (skipped)", file=sys.stderr)
    hidden = len(dataset.bad_lines) - MAX_BAD_LINES_SHOWN
    if hidden > 0:
        print(
            f"warning: {hidden} more bad line(s) skipped (listed in the results JSON)",
            file=sys.stderr,
        )


def _run_with_progress(
    configs: list[Any],
    dataset: Any,
    engine: Any,
    base: Any,
    *,
    system_prompt: str | None,
    collection: str | None,
    retriever: Any,
    quiet: bool,
) -> list[Any]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from chatapp.evaluation.runner import run_all

    total = len(configs) * len(dataset.items)
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as progress:
        task = progress.add_task("evaluating", total=total)

        def advance(config: Any, item: Any) -> None:
            progress.update(task, advance=1, description=config.label)

        return run_all(
            configs,
            dataset,
            engine,
            base,
            system_prompt=system_prompt,
            on_item=advance,
            collection=collection,
            retriever=retriever,
        )


def _default_output(names: list[str]) -> Path:
    from chatapp import paths

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9_-]+", "-", "-".join(names).lower())[:60]
    folder = paths.data_dir() / "evaluations"
    return folder / f"{stamp}-{slug}.json"


def _finish(
    results: list[Any],
    dataset: Any,
    identity: dict[str, Any],
    output: Path | None,
    as_json: bool,
    **settings: Any,
) -> None:
    from rich.console import Console

    from chatapp.evaluation.report import (
        confusion_table,
        results_document,
        results_table,
        write_results,
    )

    document = results_document(results, dataset, settings, identity)
    path = write_results(
        document, output or _default_output([r.config.template.name for r in results])
    )
    if as_json:
        print(json.dumps(document, ensure_ascii=False))
        return
    console = Console()
    if not console.is_terminal:
        console.width = 200  # piped or saved: keep one row per configuration
    title = f"{dataset.path.name}: {len(dataset.items)} items · model {identity.get('name')}"
    console.print(results_table(results, title))
    for result in results:
        table = confusion_table(result)
        if table is not None:
            console.print(table)
    print(f"results saved to {path}", file=sys.stderr)

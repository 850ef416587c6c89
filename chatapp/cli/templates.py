"""``chatapp templates list|show|new|validate`` and the ``run`` and ``eval`` commands.

``run`` and ``eval`` are implemented in ``chatapp.cli.template_run`` and
``chatapp.cli.template_eval``; this module registers all of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from chatapp.errors import TemplateError, UsageError
from chatapp.terminal_text import for_stream

templates_app = typer.Typer(
    help="Prompt templates: list, show, create and check them.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    from chatapp.cli.template_eval import eval_templates
    from chatapp.cli.template_run import run_template

    app.add_typer(templates_app, name="templates")
    app.command("run")(run_template)
    app.command("eval")(eval_templates)


def _summary(template: Any) -> dict[str, Any]:
    from chatapp.prompting.schema import INPUT

    return {
        "name": template.name,
        "title": template.title,
        "description": template.description,
        "category": template.category,
        "task": template.task,
        "origin": template.origin,
        "path": str(template.path) if template.path else None,
        "variables": {
            name: {
                "type": spec.type,
                "required": spec.is_required,
                "default": spec.default,
                "options": list(spec.option_texts()) if spec.type == "choice" else None,
                "description": spec.description,
            }
            for name, spec in template.all_variables().items()
            if name != INPUT
        },
        "examples": len(template.examples),
        "selection": template.selection.model_dump(),
        "reasoning": template.reasoning is not None,
        "output": template.output.model_dump(exclude_none=True),
        "generation": template.generation.as_params(),
    }


@templates_app.command("list")
def list_templates(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The templates you can run: bundled ones and your own (yours win on a name clash)."""
    from rich.console import Console
    from rich.table import Table

    from chatapp.prompting.loader import load_all

    templates, problems = load_all()
    for problem in problems:
        print(f"warning: template {problem}", file=sys.stderr)
    if as_json:
        print(json.dumps([_summary(t) for t in templates], ensure_ascii=False, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for heading in ("name", "task", "title", "origin"):
        table.add_column(heading)
    for template in templates:
        table.add_row(template.name, template.task, template.title, template.origin)
    Console().print(table)


@templates_app.command("show")
def show_template(
    name: Annotated[str, typer.Argument(help="Template name (or a .yaml path).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    yaml_text: Annotated[bool, typer.Option("--yaml", help="Print the YAML file itself.")] = False,
) -> None:
    """What a template does, its variables, examples, output constraint and file."""
    from chatapp.prompting.loader import get_template

    template = get_template(name)
    if yaml_text and template.path is not None:
        print(for_stream(template.path.read_text(encoding="utf-8"), sys.stdout), end="")
        return
    summary = _summary(template)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    lines = [
        f"{template.name} — {template.title}",
        template.description,
        f"task: {template.task}   category: {template.category}   from: {template.origin} "
        f"({template.path})",
    ]
    if summary["variables"]:
        lines.append("variables:")
        for var, info in summary["variables"].items():
            extra = "required" if info["required"] else f"default {info['default']!r}"
            options = f" one of {', '.join(info['options'])}" if info["options"] else ""
            lines.append(f"  {var} ({info['type']}, {extra}){options}: {info['description']}")
    out = template.output
    if out.type == "choices":
        source = ", ".join(out.choices or []) or f"from variable {out.choices_from!r}"
        lines.append(f"output: one of {source}" + (" (constrained)" if out.constrain else ""))
    elif out.type == "json":
        lines.append("output: JSON matching a schema" + (" (constrained)" if out.constrain else ""))
    else:
        lines.append("output: free text" + (f", a span of {out.span_of!r}" if out.span_of else ""))
    if template.examples:
        k = template.selection.k
        shown = "all" if k is None else str(k)
        lines.append(
            f"examples: {len(template.examples)} ({shown} shown, {template.selection.method})"
        )
    if template.reasoning:
        lines.append("reasoning: step by step, then the answer is extracted")
    if summary["generation"]:
        gen = ", ".join(f"{k}={v!r}" for k, v in summary["generation"].items())
        lines.append(f"generation: {gen}")
    print(for_stream("\n".join(line for line in lines if line), sys.stdout))


@templates_app.command("new")
def new_template(
    name: Annotated[str, typer.Argument(help="Name of the new template (its file name).")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Start from a copy of this template.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Create a commented template in your templates folder and print its path."""
    from chatapp import paths
    from chatapp.prompting.loader import get_template
    from chatapp.prompting.scaffold import scaffold_text
    from chatapp.prompting.schema import NAME_RE

    if not NAME_RE.match(name):
        raise UsageError(
            f"template name {name!r}: use lowercase letters, digits, '-' or '_' (at most 64)"
        )
    path = paths.templates_dir() / f"{name}.yaml"
    if path.exists() and not force:
        raise UsageError(f"template file {path}: already exists (use --force to overwrite)")
    if from_ is not None:
        source = get_template(from_)
        if source.path is None:
            raise TemplateError(f"template {from_!r}: has no file to copy")
        text = source.path.read_text(encoding="utf-8")
        text = _rename(text, source.name, name)
    else:
        text = scaffold_text(name, str(path))
    path.write_text(text, encoding="utf-8")
    print(path)


def _rename(text: str, old: str, new: str) -> str:
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith("name:"):
            lines[index] = f"name: {new}\n"
            return "".join(lines)
    return f"name: {new}\n" + text


@templates_app.command("validate")
def validate_templates(
    path: Annotated[
        Path | None,
        typer.Argument(help="A template file or a folder of them (default: every template)."),
    ] = None,
) -> None:
    """Check templates; every problem is printed as FILE:LINE: FIELD: PROBLEM."""
    from chatapp.prompting.loader import validate_path

    reports = validate_path(path)
    problems = [p for report in reports for p in report.problems]
    for report in reports:
        if not report.problems:
            print(f"ok  {report.path}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        bad = sum(1 for r in reports if r.problems)
        # A ChatappError, not typer.Exit: main() runs click non-standalone, which swallows
        # Exit codes.
        raise TemplateError(f"{bad} of {len(reports)} template file(s) have problems")

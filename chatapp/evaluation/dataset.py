"""Reading an evaluation file: JSON Lines, one item per line.

Each line is an object with the input text (``--input-field``, default ``text``), the expected
answer (``--label-field``, default ``label``) and optionally fields that fill template variables
(``--field passage=context``, or any field named like a variable). Lines that cannot be used are
reported with their line numbers and skipped; the rest runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatapp.errors import NotFoundError, UsageError


@dataclass
class EvalItem:
    line: int
    input: str
    label: Any
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BadLine:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


@dataclass
class EvalData:
    path: Path
    items: list[EvalItem]
    bad_lines: list[BadLine]
    total_lines: int


def load_eval_file(
    path: Path,
    *,
    input_field: str = "text",
    label_field: str = "label",
    field_map: dict[str, str] | None = None,
    variable_names: set[str] | frozenset[str] = frozenset(),
    limit: int | None = None,
) -> EvalData:
    """Items from a JSONL file; ``field_map`` is variable → field, ``variable_names`` are the
    templates' variables (a field of the same name fills one). ``limit`` keeps the first N
    usable items. Raises UsageError when no line is usable."""
    if not path.exists():
        raise NotFoundError(f"evaluation file {path}: no such file")
    if path.is_dir():
        raise UsageError(f"evaluation file {path}: is a folder, expected a .jsonl file")
    field_map = dict(field_map or {})
    items: list[EvalItem] = []
    bad: list[BadLine] = []
    total = 0
    try:
        handle = path.open(encoding="utf-8")
        with handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                total += 1
                if limit is not None and len(items) >= limit:
                    continue
                item = _parse_line(
                    line, number, input_field, label_field, field_map, variable_names, bad
                )
                if item is not None:
                    items.append(item)
    except UnicodeDecodeError:
        raise UsageError(f"evaluation file {path}: not UTF-8 text") from None
    if not items:
        detail = f"; first problem: {bad[0]}" if bad else ""
        raise UsageError(f"evaluation file {path}: no usable lines ({len(bad)} bad){detail}")
    return EvalData(path, items, bad, total)


def _parse_line(
    line: str,
    number: int,
    input_field: str,
    label_field: str,
    field_map: dict[str, str],
    variable_names: set[str] | frozenset[str],
    bad: list[BadLine],
) -> EvalItem | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        bad.append(BadLine(number, f"not valid JSON ({exc.msg})"))
        return None
    if not isinstance(row, dict):
        bad.append(BadLine(number, "not a JSON object"))
        return None
    text = row.get(input_field)
    if not isinstance(text, str) or not text.strip():
        bad.append(BadLine(number, f"no text in field {input_field!r}"))
        return None
    if label_field not in row or row[label_field] in (None, ""):
        bad.append(BadLine(number, f"no label in field {label_field!r}"))
        return None
    variables: dict[str, Any] = {}
    for name in variable_names:
        if name in row and name not in (input_field, label_field):
            variables[name] = row[name]
    for name, source in field_map.items():
        if source not in row:
            bad.append(BadLine(number, f"no field {source!r} (for variable {name!r})"))
            return None
        variables[name] = row[source]
    return EvalItem(number, text, row[label_field], variables)

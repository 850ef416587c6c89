"""Showing evaluation results: one side-by-side table, confusion tables, and the JSON file."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from chatapp.evaluation.dataset import EvalData
from chatapp.evaluation.metrics import INVALID
from chatapp.evaluation.runner import RunResult

# (metric key, column title, shown as a percentage)
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("accuracy", "accuracy", True),
    ("macro_f1", "macro-F1", True),
    ("rouge1", "ROUGE-1", True),
    ("rouge2", "ROUGE-2", True),
    ("rougeL", "ROUGE-L", True),
    ("chrf", "chrF", False),
    ("bleu", "BLEU", False),
    ("exact_match", "EM", True),
    ("f1", "F1", True),
    ("invalid_rate", "invalid", True),
    ("seconds_per_item", "s/item", False),
)


def _cell(value: Any, percent: bool) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{100 * value:.1f}%" if percent else f"{value:.2f}"


def results_table(results: list[RunResult], title: str | None = None) -> Table:
    """All configurations side by side, with only the metric columns some row has."""
    shown = [c for c in COLUMNS if any(c[0] in r.metrics for r in results)]
    table = Table(title=title, title_justify="left")
    table.add_column("configuration")
    table.add_column("n", justify="right")
    for _, heading, _ in shown:
        table.add_column(heading, justify="right")
    for result in results:
        cells = [_cell(result.metrics.get(key), pct) for key, _, pct in shown]
        table.add_row(result.config.label, str(result.metrics["n"]), *cells)
    return table


def confusion_table(result: RunResult) -> Table | None:
    """Gold label (rows) × predicted label (columns) for a classification run."""
    confusion = result.metrics.get("confusion")
    if not confusion:
        return None
    golds = list(confusion)
    predicted = sorted({p for row in confusion.values() for p in row} - {INVALID} | set(golds))
    if any(INVALID in row for row in confusion.values()):
        predicted.append(INVALID)
    table = Table(title=f"{result.config.label}: gold ↓ / predicted →", title_justify="left")
    table.add_column("gold")
    for name in predicted:
        table.add_column(name, justify="right")
    for gold in golds:
        table.add_row(gold, *(str(confusion[gold].get(p, 0)) for p in predicted))
    return table


def results_document(
    results: list[RunResult], data: EvalData, settings: dict[str, Any], model: dict[str, Any] | None
) -> dict[str, Any]:
    """Everything needed to reproduce and audit a run, as one JSON-ready object."""
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "path": str(data.path),
            "items": len(data.items),
            "lines": data.total_lines,
            "bad_lines": [{"line": b.line, "problem": b.problem} for b in data.bad_lines],
        },
        "model": model,
        "settings": settings,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "runs": [r.to_dict() for r in results],
    }


def write_results(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path

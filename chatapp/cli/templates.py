"""CLI commands (placeholder until this area lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None

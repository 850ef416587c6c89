"""Filling a template's ``{{ name }}`` placeholders with variable values.

The renderer is deliberately tiny: one regex pass over the TEMPLATE text, each placeholder
replaced by its value verbatim. User text is never parsed, so ``{{``, ``{x}``, ``$x`` or
``{% if %}`` in an input reaches the model exactly as typed and nothing in it is evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """Variable names used in ``text``, in order of first use."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)


def render_text(text: str, values: Mapping[str, str]) -> str:
    """Replace each ``{{ name }}`` in ``text`` by ``values[name]`` in one pass (values are
    inserted literally and never scanned again). Unknown names are left as written."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return values[name] if name in values else match.group(0)

    return PLACEHOLDER.sub(substitute, text)

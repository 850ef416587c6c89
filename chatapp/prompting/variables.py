"""A template's variables: the values given, checked and turned into the text each one puts
into the prompt, with defaults filled in (``VariableSpec.coerce`` checks one value)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatapp.errors import TemplateError
from chatapp.prompting.schema import INPUT, Template


def resolve_variables(
    template: Template, given: Mapping[str, Any], input_text: str | None
) -> dict[str, str]:
    """Every variable's prompt text: given values, then defaults. Raises TemplateError for an
    unknown name, a bad value, or (listing them all) missing required variables."""
    specs = template.all_variables()
    unknown = [k for k in given if k not in specs]
    if unknown:
        known = ", ".join(specs) or "none"
        raise TemplateError(
            f"template {template.name!r}: unknown variable {', '.join(map(repr, unknown))} "
            f"(known: {known})"
        )
    values: dict[str, Any] = dict(given)
    if input_text is not None and INPUT in specs:
        values[INPUT] = input_text
    missing: list[str] = []
    out: dict[str, str] = {}
    for name, spec in specs.items():
        raw = values.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip() and spec.is_required):
            if spec.default is not None:
                raw = spec.default
            elif spec.is_required:
                missing.append(name)
                continue
            else:
                out[name] = ""
                continue
        try:
            out[name] = spec.coerce(name, raw)
        except ValueError as exc:
            raise TemplateError(f"template {template.name!r}: {exc}") from None
    if missing:
        raise TemplateError(
            f"template {template.name!r}: missing required variable"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )
    return out

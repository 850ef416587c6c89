"""Filling a template's ``{{ name }}`` placeholders with variable values.

The renderer is deliberately tiny: one regex pass over the TEMPLATE text, each placeholder
replaced by its value verbatim. User text is never parsed, so ``{{``, ``{x}``, ``$x`` or
``{% if %}`` in an input reaches the model exactly as typed and nothing in it is evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chatapp.errors import TemplateError
from chatapp.prompting.languages import LANGUAGES, resolve_language

if TYPE_CHECKING:
    from chatapp.prompting.schema import Template, VariableSpec

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


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def coerce_variable(name: str, spec: VariableSpec, raw: Any) -> str:
    """The text a variable's value puts into the prompt; ValueError names what is wrong."""
    if spec.type == "number":
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"variable {name!r}: {raw!r} is not a number") from None
        if spec.min is not None and number < spec.min:
            raise ValueError(f"variable {name!r}: {raw} is below the minimum {spec.min:g}")
        if spec.max is not None and number > spec.max:
            raise ValueError(f"variable {name!r}: {raw} is above the maximum {spec.max:g}")
        return _format_number(number)
    text = str(raw)
    if spec.type == "choice":
        options = spec.option_texts()
        if text in options:
            return options[text]
        folded = {k.casefold(): v for k, v in options.items()}
        if text.casefold() in folded:
            return folded[text.casefold()]
        raise ValueError(f"variable {name!r}: {text!r} is not one of {', '.join(options)}")
    if spec.type == "language":
        language = resolve_language(text)
        if language is None:
            raise ValueError(
                f"variable {name!r}: unknown language {text!r} (e.g. {', '.join(list(LANGUAGES)[:7])})"
            )
        return language
    return text


def resolve_variables(
    template: Template, given: Mapping[str, Any], input_text: str | None
) -> dict[str, str]:
    """Every variable's prompt text: given values, then defaults. Raises TemplateError for an
    unknown name, a bad value, or (listing them all) missing required variables."""
    from chatapp.prompting.schema import INPUT

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
            out[name] = coerce_variable(name, spec, raw)
        except ValueError as exc:
            raise TemplateError(f"template {template.name!r}: {exc}") from None
    if missing:
        raise TemplateError(
            f"template {template.name!r}: missing required variable"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )
    return out

"""The prompt-template format: what one YAML file in ``prompts/`` (or the user's templates
folder) may hold, as typed models that reject unknown keys.

Cross-field rules (placeholders name declared variables, example outputs are valid choices,
a JSON schema is itself valid…) live in ``check_template`` so each problem can name the exact
field, and the loader can turn that field into a line of the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from chatapp.prompting.languages import LANGUAGES, resolve_language
from chatapp.prompting.render import placeholders

INPUT = "input"
"""The implicit variable holding the text a user runs the template on."""

Task = Literal[
    "chat",
    "classification",
    "summarization",
    "translation",
    "qa",
    "reasoning",
    "extraction",
    "rewrite",
]
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class VariableSpec(_Strict):
    """One variable of the user message template."""

    type: Literal["text", "choice", "language", "number"] = "text"
    description: str = ""
    default: str | int | float | None = None
    required: bool | None = None
    """Unset means required exactly when there is no default."""
    options: list[str] | dict[str, str] | None = None
    """For ``choice``: the allowed values, or value → the text put into the prompt."""
    min: float | None = None
    max: float | None = None

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None

    def option_texts(self) -> dict[str, str]:
        """Allowed choice values and the text each one puts into the prompt."""
        if isinstance(self.options, dict):
            return dict(self.options)
        return {o: o for o in self.options or []}

    def coerce(self, name: str, raw: Any) -> str:
        """The text value ``raw`` of variable ``name`` puts into the prompt; ValueError names
        what is wrong."""
        if self.type == "number":
            try:
                number = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"variable {name!r}: {raw!r} is not a number") from None
            if self.min is not None and number < self.min:
                raise ValueError(f"variable {name!r}: {raw} is below the minimum {self.min:g}")
            if self.max is not None and number > self.max:
                raise ValueError(f"variable {name!r}: {raw} is above the maximum {self.max:g}")
            return _format_number(number)
        text = str(raw)
        if self.type == "choice":
            options = self.option_texts()
            if text in options:
                return options[text]
            folded = {k.casefold(): v for k, v in options.items()}
            if text.casefold() in folded:
                return folded[text.casefold()]
            raise ValueError(f"variable {name!r}: {text!r} is not one of {', '.join(options)}")
        if self.type == "language":
            language = resolve_language(text)
            if language is None:
                raise ValueError(
                    f"variable {name!r}: unknown language {text!r} (e.g. {', '.join(list(LANGUAGES)[:7])})"
                )
            return language
        return text


class Example(_Strict):
    """One demonstration: the input, the expected output, optionally the reasoning leading there."""

    input: str
    output: str
    reasoning: str | None = None
    variables: dict[str, str | int | float] = Field(default_factory=dict)


class Selection(_Strict):
    """Which examples go into the prompt."""

    method: Literal["fixed", "random", "similar"] = "fixed"
    """fixed: the first k in file order; random: k drawn with a seed (per input); similar: the k
    nearest the input by embedding (bundled MiniLM), the nearest placed last."""
    k: int | None = Field(default=None, ge=0)
    """How many examples; unset means all of them."""
    seed: int = 0


class Reasoning(_Strict):
    """Chain-of-thought: the model reasons first, the final answer is extracted by a rule."""

    instruction: str = (
        "Think step by step. Then give the final answer on its own line as 'Answer: <answer>'."
    )
    answer_prefix: str = "Answer: "
    """Put before the answer in the examples' replies."""
    answer_pattern: str = r"(?im)^\s*answer\s*:\s*(.+?)\s*$"
    """Regex with one group; the last match is the answer."""
    fallback: Literal["none", "last_number", "last_line"] = "none"
    """What to take when the pattern does not match."""


class OutputSpec(_Strict):
    """The shape of the answer, and whether decoding is constrained to it."""

    type: Literal["text", "choices", "json"] = "text"
    choices: list[str] | None = None
    choices_from: str | None = None
    """Name of a variable holding comma-separated choices (user-given labels)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Emitted choice → label reported and scored, e.g. ``P: positive``."""
    json_schema: dict[str, Any] | None = None
    constrain: bool = True
    """Compile choices / the JSON schema into a grammar the sampler must follow. With
    ``reasoning`` the choices are checked after extraction instead of enforced."""
    span_of: str | None = None
    """Name of a variable the answer must be a verbatim span of (extractive QA)."""


class GenerationOverrides(_Strict):
    """Sampling settings this template needs, over the user's defaults."""

    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, ge=0.0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: list[str] | None = None

    def as_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Template(_Strict):
    """A prompt template as loaded from YAML."""

    name: str
    title: str
    description: str = ""
    category: str = "general"
    task: Task = "chat"
    """Decides the evaluation metrics (classification: accuracy/F1, summarization: ROUGE…)."""
    system: str | None = None
    template: str = "{{ input }}"
    """The user message; ``{{ name }}`` placeholders are filled with variable values."""
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)
    examples_from: str | None = None
    """Name of a variable holding user-given examples, one per line as ``input => output``."""
    selection: Selection = Field(default_factory=lambda: Selection())
    reasoning: Reasoning | None = None
    output: OutputSpec = Field(default_factory=lambda: OutputSpec())
    generation: GenerationOverrides = Field(default_factory=lambda: GenerationOverrides())
    truncate_input: bool = True
    """When the input does not fit the context: cut its end (and say so) instead of failing."""

    _path: Path | None = PrivateAttr(default=None)
    _origin: str = PrivateAttr(default="")

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def origin(self) -> str:
        """``bundled`` or ``user`` (or empty for templates built in code)."""
        return self._origin

    def all_variables(self) -> dict[str, VariableSpec]:
        """Declared variables plus the implicit ``input`` when the template uses it."""
        specs = dict(self.variables)
        used = set(placeholders(self.template)) | set(placeholders(self.system or ""))
        if INPUT in used and INPUT not in specs:
            specs = {INPUT: VariableSpec(description="the text to work on"), **specs}
        return specs

    def static_choices(self) -> list[str] | None:
        return list(self.output.choices) if self.output.choices else None


def check_template(
    template: Template, stem: str | None = None
) -> list[tuple[tuple[Any, ...], str]]:
    """Problems the typed model cannot see, each as (field path, message)."""
    import jsonschema

    problems: list[tuple[tuple[Any, ...], str]] = []
    add = problems.append
    if not NAME_RE.match(template.name):
        add((("name",), "use lowercase letters, digits, '-' or '_' (at most 64)"))
    if stem is not None and template.name != stem:
        add((("name",), f"{template.name!r} does not match the file name {stem!r}"))
    declared = set(template.variables) | {INPUT}
    for field in ("system", "template"):
        for name in placeholders(getattr(template, field) or ""):
            if name not in declared:
                add(((field,), f"placeholder {{{{ {name} }}}} names no declared variable"))
    for name, spec in template.variables.items():
        add_variable_problems(name, spec, add)
    out = template.output
    choices = template.static_choices()
    if out.type == "choices":
        if not choices and not out.choices_from:
            add((("output",), "type 'choices' needs 'choices' or 'choices_from'"))
        if choices and len(set(choices)) != len(choices):
            add((("output", "choices"), "choices repeat a value"))
        if choices and any(not c.strip() for c in choices):
            add((("output", "choices"), "a choice is empty"))
        for key in out.labels:
            if choices and key not in choices:
                add((("output", "labels", key), f"{key!r} is not one of the choices"))
    elif out.choices or out.choices_from or out.labels:
        add((("output", "type"), "choices/labels are set but type is not 'choices'"))
    if out.type == "json":
        if out.json_schema is None:
            add((("output",), "type 'json' needs 'json_schema'"))
        else:
            try:
                jsonschema.validators.validator_for(out.json_schema).check_schema(out.json_schema)
            except jsonschema.SchemaError as exc:
                add((("output", "json_schema"), f"not a valid JSON schema: {exc.message}"))
        if template.reasoning is not None:
            add((("reasoning",), "reasoning cannot be combined with a JSON output"))
    elif out.json_schema is not None:
        add((("output", "type"), "json_schema is set but type is not 'json'"))
    for field_name in ("choices_from", "span_of"):
        ref = getattr(out, field_name)
        if ref is not None and ref not in declared:
            add((("output", field_name), f"{ref!r} is not a declared variable"))
    if template.examples_from is not None and template.examples_from not in template.variables:
        add((("examples_from",), f"{template.examples_from!r} is not a declared variable"))
    if template.reasoning is not None:
        try:
            if re.compile(template.reasoning.answer_pattern).groups < 1:
                add((("reasoning", "answer_pattern"), "needs one (group) for the answer"))
        except re.error as exc:
            add((("reasoning", "answer_pattern"), f"not a valid regex: {exc}"))
    for index, example in enumerate(template.examples):
        where = ("examples", index)
        if choices and example.output not in choices:
            add(
                (
                    (*where, "output"),
                    f"{example.output!r} is not one of the choices ({', '.join(choices)})",
                )
            )
        if out.type == "json" and out.json_schema is not None:
            add_json_example_problem(example.output, out.json_schema, (*where, "output"), add)
        for name, raw in example.variables.items():
            if name not in template.variables:
                add(((*where, "variables", name), f"{name!r} is not a declared variable"))
                continue
            try:
                template.variables[name].coerce(name, raw)
            except ValueError as exc:
                add(((*where, "variables", name), str(exc)))
    return problems


def add_variable_problems(name: str, spec: VariableSpec, add: Any) -> None:
    """Problems with one variable declaration."""
    where = ("variables", name)
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        add((where, "variable names use letters, digits and '_'"))
    if spec.type == "choice" and not spec.options:
        add(((*where, "options"), "a choice variable needs options"))
    if spec.type != "choice" and spec.options is not None:
        add(((*where, "options"), "options are only for choice variables"))
    if spec.type != "number" and (spec.min is not None or spec.max is not None):
        add(((*where, "min"), "min/max are only for number variables"))
    if spec.default is None:
        return
    try:
        spec.coerce(name, spec.default)
    except ValueError as exc:
        add(((*where, "default"), str(exc)))


def add_json_example_problem(
    output: str, schema: dict[str, Any], where: tuple[Any, ...], add: Any
) -> None:
    import jsonschema

    try:
        jsonschema.validate(json.loads(output), schema)
    except json.JSONDecodeError as exc:
        add((where, f"not valid JSON ({exc.msg})"))
    except jsonschema.ValidationError as exc:
        add((where, f"does not match the JSON schema: {exc.message}"))


__all__ = [
    "INPUT",
    "LANGUAGES",
    "Example",
    "GenerationOverrides",
    "OutputSpec",
    "Reasoning",
    "Selection",
    "Template",
    "VariableSpec",
    "check_template",
]

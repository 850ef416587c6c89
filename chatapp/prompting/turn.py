"""Turning a template, its variables and an input into the parts of a turn.

``build_template_turn`` renders what the session sends for a template turn: the system prompt,
the few-shot examples as alternating user/assistant turns (small chat models copy the format of
earlier turns far better than they follow one long block of examples, and the demonstration uses
exactly the format the real turn will), the rendered user message, the generation overrides
(grammar or JSON schema included) and ``parse`` for the reply. Fitting it into the model's
context is not done here: the session hands these parts to the one budget (chatapp.context),
which may drop examples and, last, cut the input through ``render_user``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatapp.domain import ChatMessage, GenerationParams
from chatapp.errors import TemplateError
from chatapp.prompting.constraints import ParsedOutput, choices_grammar, parse_output, split_choices
from chatapp.prompting.render import render_text
from chatapp.prompting.schema import INPUT, Example, Template
from chatapp.prompting.selection import select_examples
from chatapp.prompting.variables import resolve_variables

if TYPE_CHECKING:
    from chatapp.embedding.embedder import Embedder


@dataclass
class TemplateTurn:
    """One ready-to-send template turn."""

    template: Template
    variables: dict[str, str]
    system_prompt: str | None
    examples: list[ChatMessage]
    user_text: str
    params: dict[str, Any]
    choices: list[str] | None = None
    constrained: bool = False
    shown_examples: int = 0

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def input_text(self) -> str | None:
        """The input the budget may cut (None when the template cannot be cut)."""
        if not self.template.truncate_input:
            return None
        return self.variables.get(INPUT) or None

    def render_user(self, input_text: str | None) -> str:
        """The user message with ``input_text`` in place of the input (a cut input)."""
        if input_text is None or input_text == self.variables.get(INPUT):
            return self.user_text
        return _render_user(self.template, {**self.variables, INPUT: input_text})

    def messages(self) -> list[ChatMessage]:
        """System prompt, examples and the user turn, as the backend receives them."""
        head = [ChatMessage("system", self.system_prompt)] if self.system_prompt else []
        return [*head, *self.examples, ChatMessage("user", self.user_text)]

    def generation_params(self, base: GenerationParams) -> GenerationParams:
        """``base`` with this template's overrides (and its grammar / JSON schema) applied."""
        params = base.replace(
            **{k: v for k, v in self.params.items() if k not in ("grammar", "json_schema")}
        )
        params.grammar = self.params.get("grammar")
        params.json_schema = self.params.get("json_schema")
        return params

    def parse(self, output: str) -> ParsedOutput:
        """The reply, made usable and checked against the template's output spec."""
        span_var = self.template.output.span_of
        return parse_output(
            output,
            self.template.output,
            choices=self.choices,
            reasoning=self.template.reasoning,
            span_source=self.variables.get(span_var) if span_var else None,
        )


def parse_example_lines(text: str, template_name: str) -> list[Example]:
    """User-given examples, one per line as ``input => output``; blank lines are skipped."""
    examples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "=>" not in line:
            raise TemplateError(
                f"template {template_name!r}: example line {number} {line.strip()[:40]!r} "
                "has no '=>' (write: input => output)"
            )
        given, _, output = line.rpartition("=>")
        examples.append(Example(input=given.strip(), output=output.strip()))
    return examples


def _example_reply(template: Template, example: Example) -> str:
    rule = template.reasoning
    if rule is None:
        return example.output
    thinking = (example.reasoning or "").strip()
    answer = f"{rule.answer_prefix}{example.output}"
    return f"{thinking}\n{answer}" if thinking else answer


def _render_user(template: Template, values: Mapping[str, str]) -> str:
    text = render_text(template.template, values)
    if template.reasoning is not None:
        text = f"{text.rstrip()}\n\n{template.reasoning.instruction}"
    return text


def build_template_turn(
    template: Template,
    variables: Mapping[str, Any] | None = None,
    input_text: str | None = None,
    *,
    embedder: Embedder | None = None,
    shots: int | None = None,
    select: str | None = None,
    constrain: bool | None = None,
    extra_examples: Sequence[Example] = (),
) -> TemplateTurn:
    """Render ``template`` for ``input_text``; see the module docstring.

    ``shots``/``select`` override the template's selection; ``constrain=False`` drops the
    grammar (to measure what the constraint buys); ``extra_examples`` join the template's own.
    """
    given = dict(variables or {})
    values = resolve_variables(template, given, input_text)
    query = values.get(INPUT, "")

    pool = [*template.examples, *extra_examples]
    if template.examples_from and values.get(template.examples_from, "").strip():
        pool += parse_example_lines(values[template.examples_from], template.name)

    choices = template.static_choices()
    out = template.output
    if out.type == "choices" and out.choices_from:
        choices = split_choices(values.get(out.choices_from, ""))
        if len(choices) < 2:
            raise TemplateError(
                f"template {template.name!r}: variable {out.choices_from!r} needs at least two "
                "comma-separated labels"
            )
    if choices:
        bad = [e.output for e in pool if e.output not in choices]
        if bad:
            raise TemplateError(
                f"template {template.name!r}: example output {bad[0]!r} is not one of the "
                f"choices ({', '.join(choices)})"
            )

    method = select or template.selection.method
    k = template.selection.k if shots is None else shots
    if method == "similar" and embedder is None and pool and k != 0:
        embedder = default_embedder()
    chosen = select_examples(
        pool, k, method, query=query, seed=template.selection.seed, embedder=embedder
    )

    params: dict[str, Any] = template.generation.as_params()
    use_constraint = out.constrain if constrain is None else constrain
    constrained = False
    if use_constraint and out.type == "choices" and choices and template.reasoning is None:
        params["grammar"] = choices_grammar(choices)
        constrained = True
    elif use_constraint and out.type == "json":
        params["json_schema"] = out.json_schema
        constrained = True

    turn = TemplateTurn(
        template=template,
        variables=values,
        system_prompt=render_text(template.system, values) if template.system else None,
        examples=[],
        user_text=_render_user(template, values),
        params=params,
        choices=choices,
        constrained=constrained,
    )
    _set_examples(turn, chosen, values)
    return turn


def _set_examples(turn: TemplateTurn, chosen: Sequence[Example], values: Mapping[str, str]) -> None:
    template = turn.template
    messages: list[ChatMessage] = []
    specs = template.all_variables()
    for example in chosen:
        example_values = dict(values)
        for name, raw in example.variables.items():
            try:
                example_values[name] = specs[name].coerce(name, raw)
            except (KeyError, ValueError) as exc:
                raise TemplateError(f"template {template.name!r}: example: {exc}") from None
        example_values[INPUT] = example.input
        messages.append(ChatMessage("user", _render_user(template, example_values)))
        messages.append(ChatMessage("assistant", _example_reply(template, example)))
    turn.examples = messages
    turn.shown_examples = len(chosen)


@functools.cache
def default_embedder() -> Embedder:
    """The bundled MiniLM, loaded once per process (used by ``similar`` selection)."""
    from chatapp.embedding.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("bundled")

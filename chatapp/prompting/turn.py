"""Turning a template, its variables and an input into what the model receives.

``build_template_turn`` is what ``chatapp run``, ``chatapp eval`` and the chat UI call. The
result holds the system prompt, the few-shot examples as alternating user/assistant turns (small
chat models copy the format of earlier turns far better than they follow one long block of
examples, and the demonstration uses exactly the format the real turn will), the rendered user
message, the generation overrides (grammar or JSON schema included) and ``parse`` for the reply.

Given a backend, the turn is fitted to its context: examples are dropped first (the least
relevant first), then the input's end is cut (declared in ``truncated_input``), and only when
even that cannot fit does ContextOverflowError say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatapp.context import MIN_REPLY_TOKENS, reply_reserve
from chatapp.domain import ChatMessage, GenerationParams
from chatapp.errors import ContextOverflowError, TemplateError
from chatapp.prompting.constraints import ParsedOutput, choices_grammar, parse_output, split_choices
from chatapp.prompting.render import coerce_variable, render_text, resolve_variables
from chatapp.prompting.schema import INPUT, Example, Template
from chatapp.prompting.selection import select_examples

if TYPE_CHECKING:
    from chatapp.engine.base import Backend
    from chatapp.retrieval.embedder import Embedder

TRUNCATION_MARK = " […]"


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
    dropped_examples: int = 0
    truncated_input: bool = False
    input_chars: tuple[int, int] | None = None
    """(characters kept, characters given) when the input was cut."""
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.template.name

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
    backend: Backend | None = None,
    max_tokens: int | None = None,
) -> TemplateTurn:
    """Render ``template`` for ``input_text``; see the module docstring.

    ``shots``/``select`` override the template's selection; ``constrain=False`` drops the
    grammar (to measure what the constraint buys); ``extra_examples`` join the template's own.
    With ``backend`` the turn is fitted to its context, keeping room for the reply: ``max_tokens``
    when the caller overrides the template's limit, else the template's, else the default.
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
    if backend is not None:
        reply_tokens = max_tokens or params.get("max_tokens") or GenerationParams().max_tokens
        fit_turn_to_context(turn, chosen, backend, reply_tokens)
    return turn


def _set_examples(turn: TemplateTurn, chosen: Sequence[Example], values: Mapping[str, str]) -> None:
    template = turn.template
    messages: list[ChatMessage] = []
    specs = template.all_variables()
    for example in chosen:
        example_values = dict(values)
        for name, raw in example.variables.items():
            try:
                example_values[name] = coerce_variable(name, specs[name], raw)
            except (KeyError, ValueError) as exc:
                raise TemplateError(f"template {template.name!r}: example: {exc}") from None
        example_values[INPUT] = example.input
        messages.append(ChatMessage("user", _render_user(template, example_values)))
        messages.append(ChatMessage("assistant", _example_reply(template, example)))
    turn.examples = messages
    turn.shown_examples = len(chosen)


def fit_turn_to_context(
    turn: TemplateTurn, chosen: Sequence[Example], backend: Backend, max_tokens: int
) -> None:
    """Make ``turn`` fit ``backend.n_ctx`` with room for the reply (see the module docstring)."""
    n_ctx = backend.n_ctx
    budget = n_ctx - reply_reserve(max_tokens, n_ctx)
    examples = list(chosen)
    while backend.count_chat_tokens(turn.messages()) > budget and examples:
        examples.pop(0)
        turn.dropped_examples += 1
        _set_examples(turn, examples, turn.variables)
    if turn.dropped_examples:
        turn.notes.append(f"left out {turn.dropped_examples} example(s) to fit the context")
    if backend.count_chat_tokens(turn.messages()) <= budget:
        return
    # The reply still needs MIN_REPLY_TOKENS at the very least; aim for the full budget first.
    text = turn.variables.get(INPUT, "")
    if not turn.template.truncate_input or not text:
        _overflow(turn, backend, n_ctx)

    def fits(chars: int, limit: int) -> bool:
        trial = dict(turn.variables)
        trial[INPUT] = text[:chars].rstrip() + TRUNCATION_MARK
        return backend.count_chat_tokens(_with_user(turn, trial)) <= limit

    for limit in (budget, n_ctx - MIN_REPLY_TOKENS):
        low, high = 0, len(text)
        if not fits(0, limit):
            continue
        while low < high:  # largest prefix that fits
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid, limit) else (low, mid - 1)
        kept = text[:low].rstrip() + TRUNCATION_MARK
        turn.variables = {**turn.variables, INPUT: kept}
        turn.user_text = _render_user(turn.template, turn.variables)
        turn.truncated_input = True
        turn.input_chars = (low, len(text))
        turn.notes.append(
            f"input cut to its first {low} of {len(text)} characters to fit the model's "
            f"context ({n_ctx} tokens)"
        )
        return
    _overflow(turn, backend, n_ctx)


def _with_user(turn: TemplateTurn, values: Mapping[str, str]) -> list[ChatMessage]:
    messages = turn.messages()
    messages[-1] = ChatMessage("user", _render_user(turn.template, values))
    return messages


def _overflow(turn: TemplateTurn, backend: Backend, n_ctx: int) -> None:
    used = backend.count_chat_tokens(turn.messages())
    raise ContextOverflowError(
        f"template {turn.name!r}: the prompt takes {used} tokens but the model's context holds "
        f"{n_ctx} (with room for the reply); shorten the input or raise model.n_ctx"
    )


def default_embedder() -> Embedder:
    """The bundled MiniLM, loaded once per process (used by ``similar`` selection)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        from chatapp.retrieval.embedder import SentenceTransformerEmbedder

        _EMBEDDER = SentenceTransformerEmbedder("bundled")
    return _EMBEDDER


_EMBEDDER: Embedder | None = None

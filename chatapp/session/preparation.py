"""Preparing one turn: everything between a ``TurnRequest`` and the messages the model receives.

In order: the generation settings (session < template < request overrides), the system prompt
(the request's, else the template's, else the conversation's), the template render (few-shot
examples, output constraint), retrieval (sources, or a refusal when none is relevant — then the
model is not asked), and the one context budget (chatapp.context), which decides which sources,
examples and earlier messages fit and cuts the input last. Nothing here writes anything.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from chatapp.context import ContextPlan, TurnDraft, fit_to_context
from chatapp.domain import ChatMessage, GenerationParams, Retrieval, Source
from chatapp.errors import UsageError
from chatapp.session.turns import TurnRequest

if TYPE_CHECKING:
    from chatapp.engine.base import Backend
    from chatapp.prompting.schema import Template
    from chatapp.prompting.turn import TemplateTurn
    from chatapp.retrieval.search.grounding import DocumentRetriever


@dataclass
class PreparedTurn:
    """A turn ready to stream (``plan``) or to answer with a refusal (``refusal``)."""

    request: TurnRequest
    params: GenerationParams
    plan: ContextPlan | None = None
    template_turn: TemplateTurn | None = None
    retrieval: Retrieval | None = None
    sources: list[Source] = field(default_factory=list)
    """The sources sent, numbered ``n`` in the order the prompt shows them."""
    refusal: str | None = None
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """What is stored with the reply: the request, how sources were chosen, the plan."""
        data: dict[str, Any] = {
            "kind": "refusal" if self.refusal is not None else "reply",
            "request": self.request.to_dict(),
        }
        if self.retrieval is not None:
            data["retrieval"] = self.retrieval.settings_summary()
        if self.plan is not None:
            data["plan"] = self.plan.summary()
        return data


def generation_settings(
    base: GenerationParams, template_turn: TemplateTurn | None, overrides: dict[str, Any]
) -> GenerationParams:
    """The session's settings, then the template's (grammar included), then this turn's."""
    params = template_turn.generation_params(base) if template_turn else base.replace()
    params = params.replace(**overrides)
    if params.seed is None:
        # Record the seed actually used so a reply can be reproduced.
        params.seed = random.randint(0, 2**31 - 1)
    return params


def render_template(
    request: TurnRequest, templates: Mapping[str, Template] | None = None
) -> TemplateTurn | None:
    """The request's template rendered for its text (None for a plain chat turn);
    ``templates`` holds ones already loaded, by name."""
    call = request.template
    if call is None:
        return None
    from chatapp.prompting.loader import get_template
    from chatapp.prompting.schema import Example
    from chatapp.prompting.turn import build_template_turn

    template = (templates or {}).get(call.name) or get_template(call.name)
    return build_template_turn(
        template,
        _variables_with_sources(request, template),
        request.text,
        shots=call.shots,
        select=call.select,
        constrain=call.constrain,
        extra_examples=[Example.model_validate(e) for e in call.extra_examples],
    )


SOURCES_PLACEHOLDER = "[the sources found in the collection]"
"""Stands for the passage in a template rendered before retrieval (see ``documents_variable``);
the budget's render puts the sources that fit in its place."""


def documents_variable(request: TurnRequest, template: Template) -> str | None:
    """The variable a collection's sources fill: a template that answers with a span of a
    passage (``output.span_of``, like ``qa``), run with a collection and no passage given,
    answers from the sources found, fenced and numbered as in a grounded turn."""
    if request.collection is None or request.template is None:
        return None
    name = template.output.span_of
    return name if name and name not in request.template.variables else None


def _variables_with_sources(request: TurnRequest, template: Template) -> dict[str, Any]:
    assert request.template is not None
    variables: dict[str, Any] = dict(request.template.variables)
    name = documents_variable(request, template)
    if name is not None:
        variables[name] = SOURCES_PLACEHOLDER
    return variables


def sources_passage(sources: Sequence[Any]) -> str:
    """Sources as one passage: fenced blocks numbered by rank, the best last (as a grounded
    turn lists them), so document text stays quoted data."""
    from chatapp.prompting import grounded

    numbered = list(enumerate(sources, start=1))
    return "\n\n".join(grounded.source_block(n, s) for n, s in reversed(numbered))


def check_template(request: TurnRequest) -> None:
    """Raise the usual one-line error for an unknown template or a bad variable (front ends
    call it before loading a model, so a typo fails fast)."""
    if request.template is None:
        return
    from chatapp.prompting.loader import get_template
    from chatapp.prompting.schema import INPUT
    from chatapp.prompting.variables import resolve_variables

    template = get_template(request.template.name)
    needs_input = INPUT in template.all_variables()
    if needs_input and not request.text.strip():
        raise UsageError(
            f"template {template.name!r}: no input (give text, a file path, or - for stdin)"
        )
    resolve_variables(
        template,
        _variables_with_sources(request, template),
        request.text if needs_input else None,
    )


def prepare_turn(
    request: TurnRequest,
    *,
    backend: Backend,
    history: Sequence[ChatMessage],
    system_prompt: str | None,
    base_params: GenerationParams,
    retriever: DocumentRetriever | None,
    templates: Mapping[str, Template] | None = None,
) -> PreparedTurn:
    """Prepare ``request`` as the next turn after ``history`` (see the module docstring).
    Raises ContextOverflowError when even the bare turn cannot fit, TemplateError for bad
    template variables, RetrievalError/NotFoundError for an unusable collection."""
    template_turn = render_template(request, templates)
    if template_turn is None and not request.text.strip():
        raise UsageError("empty prompt: nothing to send")
    params = generation_settings(base_params, template_turn, request.params)
    system_text = request.system_prompt
    if system_text is None and template_turn is not None:
        system_text = template_turn.system_prompt
    if system_text is None:
        system_text = system_prompt
    prepared = PreparedTurn(request, params, template_turn=template_turn)

    def user_text(input_text: str | None) -> str:
        if template_turn is not None:
            return template_turn.render_user(input_text)
        return request.text if input_text is None else input_text

    # A plain message is all input: too long for the context, it is cut (with the same note a
    # template's input gets) rather than refused — a long paste is the user's text.
    draft = TurnDraft(
        render=lambda sources, input_text: user_text(input_text),
        input_text=template_turn.input_text if template_turn is not None else request.text,
    )
    passage = (
        documents_variable(request, template_turn.template) if template_turn is not None else None
    )
    if request.collection is not None:
        from chatapp.prompting import grounded

        if retriever is None:
            raise UsageError("answering from documents needs a document retriever")
        retrieval = retriever.retrieve(request.text, request.collection, request.top_k)
        prepared.retrieval = retrieval
        if not retrieval.sources:
            prepared.refusal = grounded.refusal_text(retrieval.collection, retrieval.language)
            return prepared
        # The budget cuts the sources to the sentences that answer the question, within
        # the source budget and what the context has left.
        retrieval.source_tokens = retriever.source_tokens
        draft.sources = retrieval.sources
        draft.question = request.text
        draft.source_tokens = retrieval.source_tokens
        draft.source_text = grounded.source_block
        if passage is not None:
            # The template's own words, with the sources that fit as its passage (the answer
            # must be a span of it, so no citation rules are added).
            draft.render = lambda sources, input_text: user_text(input_text).replace(
                SOURCES_PLACEHOLDER, sources_passage(sources)
            )
        else:
            system_text = grounded.grounded_system(system_text, retrieval.language)
            draft.render = lambda sources, input_text: grounded.grounded_text(
                user_text(input_text), sources, retrieval.language
            )
    system = ChatMessage("system", system_text) if system_text else None
    plan = fit_to_context(
        system,
        history,
        draft,
        examples=template_turn.examples if template_turn is not None else (),
        # The prompt as this reply's settings render it (the thinking switch changes it).
        count_chat_tokens=lambda messages: backend.count_chat_tokens(messages, params),
        count_tokens=backend.count_tokens,
        n_ctx=backend.n_ctx,
        max_tokens=params.max_tokens,
    )
    params.max_tokens = plan.max_reply_tokens
    prepared.plan = plan
    if passage is not None and template_turn is not None:
        template_turn.variables[passage] = sources_passage(plan.sources)  # for the span check
    prepared.sources = [replace(s, n=n) for n, s in enumerate(plan.sources, start=1)]
    prepared.notes = plan.notes()
    notice = korean_notice(request.text, backend, history)
    if notice:
        prepared.notes.append(notice)
    return prepared


def korean_notice(text: str, backend: Backend, history: Sequence[ChatMessage]) -> str | None:
    """For the first Korean message of a conversation sent to a model without the Korean flag:
    say so, naming catalog models that speak Korean with their size and fit on this machine."""
    from chatapp.text.language import KOREAN, query_language

    if query_language(text) != KOREAN:
        return None
    if any(m.role == "user" and query_language(m.content) == KOREAN for m in history):
        return None  # said once, at the conversation's first Korean message
    from chatapp.models.catalog import korean_models, speaks_korean

    identity = backend.identity
    if speaks_korean(identity.path or identity.name) is not False:
        return None
    options = [o for o in korean_models() if o.fit != "too big"][:3] or korean_models()[:3]
    if not options:
        return None
    named = "; ".join(o.describe() for o in options)
    return (
        f"{identity.name} does not speak Korean (its replies to Korean will be poor). Models "
        f"that do: {named} — or pick one with F9 in the chat."
    )

"""Rendering: user text is inserted literally, variables are typed and checked, and a turn is
built as system + example turns + user turn, fitted to the context."""

from __future__ import annotations

import pytest

from chatapp.domain import GenerationParams
from chatapp.engine.fake import FakeBackend
from chatapp.errors import ContextOverflowError, TemplateError
from chatapp.prompting import build_template_turn, get_template
from chatapp.prompting.render import placeholders, render_text
from chatapp.prompting.schema import Template

INJECTIONS = [
    "{{ target }}",
    "{{input}}",
    "{x}",
    "$x and ${x}",
    "{% if true %}boom{% endif %}",
    "{{ 7*7 }}",
    "%(input)s",
]


def make(**fields) -> Template:
    return Template.model_validate({"name": "t", "title": "T", **fields})


@pytest.mark.parametrize("text", INJECTIONS)
def test_user_text_is_rendered_literally(text: str) -> None:
    template = get_template("translate")
    turn = build_template_turn(template, {"target": "ko"}, text)
    assert turn.user_text == f"Translate into Korean:\n\n{text}"
    assert "Korean" in (turn.system_prompt or "")


def test_variable_values_are_not_rescanned() -> None:
    # A value that looks like a placeholder of another variable stays as typed.
    template = make(
        template="{{ a }} / {{ b }}", variables={"a": {"type": "text"}, "b": {"type": "text"}}
    )
    turn = build_template_turn(template, {"a": "{{ b }}", "b": "B"})
    assert turn.user_text == "{{ b }} / B"


def test_render_text_single_pass_and_unknown_left_alone() -> None:
    assert render_text("{{x}}{{ y }}{{ z }}", {"x": "{{ y }}", "y": "Y"}) == "{{ y }}Y{{ z }}"
    assert placeholders("{{ a }} {{b}} {{ a }} { c } {{ 1x }}") == ["a", "b"]


def test_missing_required_variables_are_all_listed() -> None:
    template = make(
        template="{{ input }} {{ a }} {{ b }} {{ c }}",
        variables={"a": {}, "b": {}, "c": {"default": "C"}},
    )
    with pytest.raises(TemplateError, match=r"missing required variables input, a, b$"):
        build_template_turn(template, {})
    with pytest.raises(TemplateError, match=r"missing required variable b$"):
        build_template_turn(template, {"a": "A"}, "text")


def test_unknown_and_bad_values_name_the_variable() -> None:
    template = get_template("summarize")
    with pytest.raises(TemplateError, match=r"unknown variable 'colour' \(known: input, style"):
        build_template_turn(template, {"colour": "red"}, "text")
    with pytest.raises(TemplateError, match=r"'style': 'haiku' is not one of tldr, bullets"):
        build_template_turn(template, {"style": "haiku"}, "text")
    with pytest.raises(TemplateError, match=r"'length': 'many' is not a number"):
        build_template_turn(template, {"length": "many"}, "text")
    with pytest.raises(TemplateError, match=r"'length': 50 is above the maximum 20"):
        build_template_turn(template, {"length": "50"}, "text")
    with pytest.raises(TemplateError, match=r"'language': unknown language 'Elvish'"):
        build_template_turn(template, {"language": "Elvish"}, "text")


def test_typed_variables_put_their_prompt_text_in() -> None:
    template = get_template("summarize")
    turn = build_template_turn(
        template, {"style": "Bullets", "length": "5.0", "language": "ko"}, "some text"
    )
    assert "as a bulleted list, one '- ' line per main point" in turn.user_text
    assert "at most 5 sentences" in turn.user_text
    assert "in Korean." in turn.user_text
    defaults = build_template_turn(template, {}, "some text")
    assert "TL;DR" in defaults.user_text and "in English." in defaults.user_text


@pytest.mark.parametrize("alias", ["ja", "日本語", "JAPANESE", "Japanese"])
def test_language_aliases(alias: str) -> None:
    turn = build_template_turn(get_template("translate"), {"target": alias}, "hi")
    assert turn.user_text.startswith("Translate into Japanese:")


def test_examples_become_alternating_chat_turns() -> None:
    template = get_template("sentiment")
    turn = build_template_turn(template, {}, "좋아요", shots=2)
    roles = [m.role for m in turn.messages()]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert turn.examples[1].content == template.examples[0].output
    assert template.examples[0].input in turn.examples[0].content
    assert turn.messages()[-1].content.startswith("Text: 좋아요")


def test_reasoning_examples_show_steps_then_answer() -> None:
    template = get_template("reasoning")
    turn = build_template_turn(template, {}, "What is 6 times 7?", shots=1)
    assert turn.examples[1].content.endswith("\nAnswer: 10")
    assert "step by step" in turn.user_text
    parsed = turn.parse("6 × 7 = 42.\nAnswer: 42")
    assert (parsed.value, parsed.reasoning) == ("42", "6 × 7 = 42.")


def test_qa_examples_use_their_own_passage() -> None:
    template = get_template("qa")
    turn = build_template_turn(template, {"passage": "Paris is in France."}, "Where is Paris?")
    assert "Golden Gate" in turn.examples[0].content
    assert "Paris is in France." in turn.user_text
    assert turn.parse("France").value == "France"
    assert not turn.parse("Germany").valid


def test_user_given_labels_and_examples() -> None:
    template = get_template("classify")
    turn = build_template_turn(
        template,
        {"labels": "bug, feature, question", "examples": "it crashes => bug\n\nhow? => question"},
        "add a dark mode",
    )
    assert turn.choices == ["bug", "feature", "question"]
    assert turn.params["grammar"] == 'root ::= "bug" | "feature" | "question"\n'
    assert [m.content for m in turn.examples if m.role == "assistant"] == ["bug", "question"]
    with pytest.raises(TemplateError, match=r"example line 1 'no arrow' has no '=>'"):
        build_template_turn(template, {"labels": "a, b", "examples": "no arrow"}, "x")
    with pytest.raises(TemplateError, match=r"example output 'spam' is not one of the choices"):
        build_template_turn(template, {"labels": "a, b", "examples": "x => spam"}, "x")
    with pytest.raises(TemplateError, match="needs at least two"):
        build_template_turn(template, {"labels": "only"}, "x")


def test_generation_overrides_and_constraint_switch() -> None:
    template = get_template("sentiment")
    turn = build_template_turn(template, {}, "x")
    params = turn.generation_params(GenerationParams(temperature=0.9, max_tokens=500))
    assert (params.temperature, params.max_tokens) == (0.0, 8)
    assert params.grammar == 'root ::= "positive" | "negative"\n' and turn.constrained
    free = build_template_turn(template, {}, "x", constrain=False)
    assert free.generation_params(GenerationParams()).grammar is None and not free.constrained
    json_turn = build_template_turn(get_template("aspect-sentiment"), {}, "nice")
    assert json_turn.generation_params(GenerationParams()).json_schema["required"] == [
        "overall",
        "aspects",
    ]


def test_reasoning_with_choices_checks_instead_of_constraining() -> None:
    template = make(
        template="Q: {{ input }}",
        reasoning={},
        output={"type": "choices", "choices": ["yes", "no"]},
    )
    turn = build_template_turn(template, {}, "Is 7 > 3?")
    assert "grammar" not in turn.params and not turn.constrained
    assert turn.parse("7 is more than 3.\nAnswer: Yes").value == "yes"
    assert not turn.parse("7 is more than 3.\nAnswer: maybe").valid


def test_long_input_drops_examples_then_is_cut_and_says_so() -> None:
    """The session's one budget fits a template turn: examples go first, then the input is cut."""
    from chatapp.session import ChatSession, TemplateCall, TurnRequest, consume

    backend = FakeBackend(context_size=300)
    long_text = "word " * 1000
    request = TurnRequest(long_text, template=TemplateCall("sentiment"), store=False)
    result = consume(ChatSession(backend, None).send(request))
    plan = result.plan
    assert plan.dropped_examples == 4 and plan.shown_examples == 0
    assert plan.truncated_input and plan.input_chars is not None
    kept, given = plan.input_chars
    assert 0 < kept < given == len(long_text)
    assert backend.count_chat_tokens(backend.last_call.messages) <= 300 - 8
    assert any("input cut" in note for note in result.notes)


def test_input_that_cannot_fit_raises_a_clear_error() -> None:
    from chatapp.session import ChatSession, TemplateCall, TurnRequest

    template = make(template="{{ input }}", system="word " * 400, truncate_input=False)
    session = ChatSession(FakeBackend(context_size=256), None, templates={"t": template})
    request = TurnRequest("hello", template=TemplateCall("t"), store=False)
    with pytest.raises(ContextOverflowError, match=r"prompt too long: .* take \d+ tokens"):
        list(session.send(request))

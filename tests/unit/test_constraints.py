"""Output constraints (GBNF text) and parsing model output into valid answers."""

from __future__ import annotations

import pytest

from chatapp.prompting.constraints import (
    choices_grammar,
    extract_answer,
    find_span,
    gbnf_literal,
    match_choice,
    parse_output,
    split_choices,
)
from chatapp.prompting.schema import OutputSpec, Reasoning


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("positive", '"positive"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines\ttab\r", '"two\\nlines\\ttab\\r"'),
        ("긍정", '"긍정"'),
        ("bell\x07", '"bell\\x07"'),
    ],
)
def test_gbnf_literal_escapes(text: str, literal: str) -> None:
    assert gbnf_literal(text) == literal


def test_choices_grammar() -> None:
    assert choices_grammar(["긍정", "부정"]) == 'root ::= "긍정" | "부정"\n'
    with pytest.raises(ValueError):
        choices_grammar([])


def test_split_choices() -> None:
    assert split_choices(" bug, feature ,\nquestion, bug,, ") == ["bug", "feature", "question"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("positive", "positive"),
        ("  Positive.\n", "positive"),
        ('"NEGATIVE"', "negative"),
        ("negative!\nbecause it is bad", "negative"),
        ("The sentiment is positive", None),
        ("neutral", None),
        ("", None),
    ],
)
def test_match_choice_is_forgiving_of_case_and_punctuation_only(answer, expected) -> None:
    assert match_choice(answer, ["positive", "negative"], {}) == expected


@pytest.mark.parametrize("answer", ["P", "(P)", "P)", "(P) Positive", "positive", "p."])
def test_lettered_choices(answer: str) -> None:
    spec = OutputSpec(type="choices", choices=["P", "N"], labels={"P": "positive", "N": "negative"})
    parsed = parse_output(answer, spec, choices=["P", "N"])
    assert parsed.valid and parsed.value == "positive"


def test_output_outside_choices_is_invalid() -> None:
    spec = OutputSpec(type="choices", choices=["positive", "negative"])
    parsed = parse_output("I think it is mixed", spec, choices=["positive", "negative"])
    assert not parsed.valid and parsed.value is None
    assert parsed.error == "'I think it is mixed' is not one of the choices"


def test_json_output_validated_against_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    spec = OutputSpec(type="json", json_schema=schema)
    good = parse_output(' {"n": 3} ', spec)
    assert good.valid and good.value == {"n": 3}
    wrong = parse_output('{"n": "three"}', spec)
    assert not wrong.valid and "does not match the schema" in (wrong.error or "")
    broken = parse_output('{"n": 3', spec)
    assert not broken.valid and "not valid JSON" in (broken.error or "")


def test_reasoning_extraction_rules() -> None:
    rule = Reasoning()
    text = "First 2+2=4.\nAnswer: 3 (wrong)\nLet me check.\nanswer: 4"
    assert extract_answer(text, rule) == ("First 2+2=4.\nAnswer: 3 (wrong)\nLet me check.", "4")
    numbers = Reasoning(fallback="last_number")
    assert extract_answer("12 apples minus 2 is 1,010 or so", numbers)[1] == "1010"
    assert extract_answer("no digits here", numbers)[1] is None
    lines = Reasoning(fallback="last_line")
    assert extract_answer("step one\nthe end\n", lines) == ("step one", "the end")
    assert extract_answer("nothing", Reasoning())[1] is None


def test_reasoning_then_choice() -> None:
    spec = OutputSpec(type="choices", choices=["yes", "no"])
    parsed = parse_output(
        "It rains, so yes.\nAnswer: Yes", spec, choices=["yes", "no"], reasoning=Reasoning()
    )
    assert (parsed.valid, parsed.value, parsed.reasoning) == (True, "yes", "It rains, so yes.")
    missing = parse_output("I am not sure", spec, choices=["yes", "no"], reasoning=Reasoning())
    assert not missing.valid and missing.error == "no final answer found"


def test_span_must_occur_in_passage() -> None:
    passage = "한글은 1443년 조선의 세종대왕이 창제하였다. The Golden  Gate opened in 1937."
    assert find_span("세종대왕", passage) == "세종대왕"
    assert find_span(" golden gate. ", passage) == "Golden  Gate"
    assert find_span("Brooklyn", passage) is None
    assert find_span("  ", passage) is None
    spec = OutputSpec(type="text", span_of="passage")
    assert parse_output("1937", spec, span_source=passage).valid
    assert not parse_output("1938", spec, span_source=passage).valid


def test_free_text_is_valid_unless_empty() -> None:
    assert parse_output("hello", OutputSpec()).valid
    assert not parse_output("  \n", OutputSpec()).valid

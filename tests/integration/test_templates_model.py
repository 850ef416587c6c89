"""Templates with the bundled SmolLM2 through real llama.cpp: constraints hold, JSON validates,
and every bundled template runs from ``chatapp run``."""

from __future__ import annotations

import json

import jsonschema
import pytest

from chatapp.cli import main
from chatapp.domain import GenerationParams
from chatapp.prompting import get_template
from chatapp.prompting.schema import Template
from chatapp.session import ChatSession, TemplateCall, TurnRequest, TurnResult, consume

pytestmark = pytest.mark.slow

BASE = GenerationParams(seed=0)
# A system prompt that pulls the model away from a bare label: only the grammar keeps it there.
CHATTY = "Explain your answer in two or three full sentences before you give it."
REVIEWS = ["배우들 연기가 최고였어요", "Worst purchase ever. It broke in a day.", "그냥 그랬음 ㅋ"]


def run_template(
    backend, template: Template | str, text: str, variables=None, **overrides
) -> TurnResult:
    """One template turn through the session, stored nowhere (as ``chatapp eval`` does)."""
    name = template if isinstance(template, str) else template.name
    templates = {} if isinstance(template, str) else {name: template}
    shots = overrides.pop("shots", None)
    session = ChatSession(backend, None, params=BASE, templates=templates)
    call = TemplateCall(name, dict(variables or {}), shots=shots)
    return consume(session.send(TurnRequest(text, template=call, params=overrides, store=False)))


@pytest.mark.parametrize("name", ["sentiment", "sentiment-ko", "sentiment-mc"])
def test_constraint_forces_a_valid_label(llama_backend, name: str) -> None:
    template = get_template(name)
    chatty = template.model_copy(update={"system": CHATTY})
    choices = set(template.output.choices or [])
    for review in REVIEWS:
        result = run_template(
            llama_backend, chatty, review, shots=0, temperature=0.9, max_tokens=24
        )
        assert result.text in choices, result.text
        assert result.parsed.valid and result.constrained


def test_user_labels_with_quotes_and_spaces_compile(llama_backend) -> None:
    labels = 'needs "review", ok as is, 보류'
    result = run_template(llama_backend, "classify", "fix the typo", {"labels": labels})
    assert result.text in {'needs "review"', "ok as is", "보류"}


def test_json_schema_output_validates(llama_backend) -> None:
    template = get_template("aspect-sentiment")
    result = run_template(
        llama_backend, template, "The screen is sharp but the battery is awful.", shots=1
    )
    value = json.loads(result.text)
    jsonschema.validate(value, template.output.json_schema)
    assert result.parsed.valid and result.stats.completion_tokens <= 200


def test_reasoning_extracts_an_answer_line(llama_backend) -> None:
    result = run_template(
        llama_backend, "reasoning", "Anna has 5 pens and buys 3 more. How many?", max_tokens=64
    )
    parsed, raw = result.parsed, result.text
    # The 135M model's arithmetic is unreliable; what must hold is the extraction rule.
    if parsed.valid:
        assert parsed.value and parsed.value in raw
    else:
        assert parsed.error == "no final answer found" and not any(c.isdigit() for c in raw)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


RUN_ARGS = {
    "chat": ["Say hello."],
    "summarize": ["Cats sleep a lot. They also like fish. Dogs bark.", "--var", "style=bullets"],
    "summarize-ko": ["고양이는 잠을 많이 잔다. 생선을 좋아한다."],
    "translate": ["Good morning", "--var", "target=ko"],
    "sentiment": ["정말 재밌어요"],
    "sentiment-ko": ["정말 재밌어요"],
    "sentiment-mc": ["Awful film."],
    "aspect-sentiment": ["Great food, slow service."],
    "classify": [
        "The app crashes on start",
        "--var",
        "labels=bug, feature",
        "--var",
        "examples=add dark mode => feature",
    ],
    "reasoning": ["What is 2 + 3?"],
    "qa": ["When did it open?", "--var", "passage=The bridge opened in 1937."],
    "rewrite": ["i has a apple", "--var", "goal=grammar"],
}


def test_every_bundled_template_has_a_run_case() -> None:
    from chatapp.prompting.loader import bundled_dir

    assert bundled_dir() is not None
    assert {p.stem for p in bundled_dir().glob("*.yaml")} == set(RUN_ARGS)


@pytest.mark.parametrize("name", sorted(RUN_ARGS))
def test_chatapp_run_each_bundled_template(capsys, name: str) -> None:
    code, out, err = run_cli(
        capsys, "run", name, *RUN_ARGS[name], "--max-tokens", "6", "--json", "--seed", "1"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["template"] == name and result["model"] == "smollm2-135m"
    assert 0 < result["stats"]["completion_tokens"] <= 6
    template: Template = get_template(name)
    if template.output.type == "choices":
        assert result["valid"] and result["raw"] in (template.output.choices or ["bug", "feature"])

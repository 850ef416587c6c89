"""Loading and validating template files: bundled ones, user overrides, and every bad file
naming the file, the line and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chatapp import paths
from chatapp.errors import NotFoundError, TemplateError
from chatapp.prompting.loader import (
    TemplateFileError,
    bundled_dir,
    discover,
    get_template,
    load_all,
    load_template_file,
    validate_path,
)

BUNDLED = {
    "chat",
    "summarize",
    "summarize-ko",
    "translate",
    "sentiment",
    "sentiment-ko",
    "sentiment-mc",
    "aspect-sentiment",
    "classify",
    "reasoning",
    "qa",
    "rewrite",
}


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def problem_of(path: Path) -> str:
    with pytest.raises(TemplateFileError) as caught:
        load_template_file(path)
    return str(caught.value)


def test_every_bundled_template_loads() -> None:
    templates, problems = load_all()
    assert problems == []
    assert {t.name for t in templates} >= BUNDLED
    assert all(t.origin == "bundled" for t in templates)
    assert bundled_dir() is not None


def test_constrained_classifiers_have_labels_and_examples_inside_them() -> None:
    for name in ("sentiment", "sentiment-ko", "sentiment-mc"):
        template = get_template(name)
        assert template.output.type == "choices"
        assert template.generation.temperature == 0
        assert {e.output for e in template.examples} == set(template.output.choices or [])
    assert get_template("sentiment-mc").output.labels == {"P": "positive", "N": "negative"}


def test_user_template_overrides_bundled_one_of_the_same_name() -> None:
    write(
        paths.templates_dir(),
        "sentiment",
        """
        title: My sentiment
        output: {type: choices, choices: [good, bad]}
    """,
    )
    entry = discover()["sentiment"]
    assert entry.origin == "user" and entry.overrides is not None
    template = get_template("sentiment")
    assert template.title == "My sentiment" and template.origin == "user"


def test_unknown_template_names_it_and_lists_known_ones() -> None:
    with pytest.raises(NotFoundError, match=r"template 'nope': not found \(known: .*sentiment"):
        get_template("nope")


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broken",
        """
        title: Broken
        template: "unclosed
        system: x
    """,
    )
    message = problem_of(path)
    assert str(path) in message and "not valid YAML" in message
    assert "quoted scalar that started on line 2" in message
    path.write_text("title: T\noutput:\n  type: text\n bad: indent\n", encoding="utf-8")
    assert problem_of(path).startswith(f"template {path}:4: not valid YAML")


def test_unknown_key_names_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "extra",
        """
        title: Extra
        output:
          type: choices
          choices: [a, b]
          colour: red
    """,
    )
    assert problem_of(path) == f"template {path}:5: output.colour: unknown field"


def test_wrong_type_names_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wrongtype",
        """
        title: Wrong
        generation:
          temperature: hot
    """,
    )
    message = problem_of(path)
    assert message.startswith(f"template {path}:3: generation.temperature:")
    assert "number" in message


def test_example_output_not_in_choices_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "badexample",
        """
        title: Bad example
        output: {type: choices, choices: [positive, negative]}
        examples:
          - {input: fine, output: positive}
          - {input: meh, output: neutral}
    """,
    )
    message = problem_of(path)
    assert f"{path}:5: examples[1].output: 'neutral' is not one of the choices" in message


def test_missing_title_and_undeclared_placeholder(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "holes",
        """
        template: "Translate into {{ lang }}: {{ input }}"
    """,
    )
    report = validate_path(path)[0]
    messages = [str(p) for p in report.problems]
    assert any("title: required field is missing" in m for m in messages)
    path.write_text('title: T\ntemplate: "Translate into {{ lang }}: {{ input }}"\n')
    assert "placeholder {{ lang }} names no declared variable" in problem_of(path)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("title: T\nname: other\n", "'other' does not match the file name"),
        (
            "title: T\noutput: {type: json, json_schema: {type: nonsense}}\n",
            "not a valid JSON schema",
        ),
        ("title: T\noutput: {type: choices}\n", "needs 'choices' or 'choices_from'"),
        ("title: T\nvariables: {tone: {type: choice}}\n", "a choice variable needs options"),
        ("title: T\nvariables: {n: {type: number, default: 5, max: 3}}\n", "above the maximum"),
        ("title: T\nvariables: {to: {type: language, default: Klingon}}\n", "unknown language"),
        ("title: T\ntitle: U\n", "title: given twice"),
        ("- just\n- a list\n", "expected a mapping"),
        ("title: T\nreasoning: {answer_pattern: 'Answer: .+'}\n", "needs one (group)"),
        (
            "title: T\noutput: {type: json, json_schema: {type: object}}\n"
            "examples: [{input: x, output: 'not json'}]\n",
            "not valid JSON",
        ),
    ],
)
def test_bad_template_files(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(body, encoding="utf-8")
    message = problem_of(path)
    assert str(path) in message and expected in message


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00title")
    assert "not UTF-8" in problem_of(binary)
    with pytest.raises(NotFoundError, match="no such file"):
        validate_path(tmp_path / "missing.yaml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TemplateError, match=r"no \.yaml template files"):
        validate_path(empty)


def test_broken_user_template_does_not_hide_the_others() -> None:
    write(paths.templates_dir(), "mine", "title: [unclosed\n")
    templates, problems = load_all()
    assert {t.name for t in templates} >= BUNDLED
    assert len(problems) == 1 and "mine.yaml" in str(problems[0])
    with pytest.raises(TemplateError, match=r"mine\.yaml:2: not valid YAML .*started on line 1"):
        get_template("mine")

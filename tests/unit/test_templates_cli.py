"""``chatapp templates …``, ``chatapp run`` and ``chatapp eval`` in-process, on FakeBackend."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from chatapp import paths
from chatapp.cli import main
from chatapp.engine import factory
from chatapp.engine.fake import FakeBackend


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    backend = FakeBackend()
    monkeypatch.setattr(factory, "create_backend", lambda settings, **kw: backend)
    return backend


def test_list_and_show(capsys) -> None:
    code, out, _ = cli(capsys, "templates", "list")
    assert code == 0 and "sentiment-mc" in out and "translate" in out
    code, out, _ = cli(capsys, "templates", "list", "--json")
    entries = {e["name"]: e for e in json.loads(out)}
    assert entries["translate"]["variables"]["target"]["type"] == "language"
    assert entries["sentiment"]["output"]["choices"] == ["positive", "negative"]
    code, out, _ = cli(capsys, "templates", "show", "classify")
    assert code == 0 and "labels (text, required)" in out and "from variable 'labels'" in out
    code, out, _ = cli(capsys, "templates", "show", "qa", "--yaml")
    assert out.startswith("# Extractive question answering")


def test_new_scaffold_validates_and_is_listed(capsys) -> None:
    code, out, _ = cli(capsys, "templates", "new", "my-notes")
    path = Path(out.strip())
    assert code == 0 and path == paths.templates_dir() / "my-notes.yaml"
    assert cli(capsys, "templates", "validate", str(path))[0] == 0
    assert "my-notes" in cli(capsys, "templates", "list")[1]
    code, _, err = cli(capsys, "templates", "new", "my-notes")
    assert code == 2 and "already exists" in err
    code, out, _ = cli(capsys, "templates", "new", "my-sentiment", "--from", "sentiment")
    assert code == 0 and "name: my-sentiment\n" in Path(out.strip()).read_text()
    assert cli(capsys, "templates", "validate")[0] == 0
    code, _, err = cli(capsys, "templates", "new", "Bad Name")
    assert code == 2 and "template name 'Bad Name'" in err


def test_validate_reports_file_line_field_and_fails(capsys, tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("title: OK\n", encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("title: Bad\ngeneration:\n  temprature: 0\n")
    code, out, err = cli(capsys, "templates", "validate", str(tmp_path))
    assert code == 2
    assert f"ok  {tmp_path / 'ok.yaml'}" in out
    assert f"error: {tmp_path / 'bad.yaml'}:3: generation.temprature: unknown field" in err
    assert "1 of 2 template file(s) have problems" in err
    code, _, err = cli(capsys, "templates", "validate", str(tmp_path / "none.yaml"))
    assert code == 2 and "no such file" in err


def test_run_json_with_label_mapping(capsys, fake: FakeBackend) -> None:
    fake.enqueue("P")
    code, out, _ = cli(capsys, "run", "sentiment-mc", "좋은 영화", "--json")
    result = json.loads(out)
    assert code == 0
    assert {k: result[k] for k in ("template", "output", "parsed", "valid")} == {
        "template": "sentiment-mc",
        "output": "P",
        "parsed": "positive",
        "valid": True,
    }
    assert result["stats"]["constrained"] and result["stats"]["examples"] == 4
    call = fake.last_call
    assert call.params.grammar == 'root ::= "P" | "N"\n' and call.params.temperature == 0
    assert call.messages[-1].content.startswith("Review: 좋은 영화")


def test_run_streams_and_shows_answer(capsys, fake: FakeBackend) -> None:
    fake.enqueue("3 + 4 = 7.\nAnswer: 7")
    code, out, err = cli(capsys, "run", "reasoning", "What is 3 + 4?", "--shots", "0")
    assert code == 0 and out == "3 + 4 = 7.\nAnswer: 7\n" and "answer: 7" in err
    fake.enqueue("maybe")
    code, out, err = cli(capsys, "run", "sentiment", "ok", "--no-constraint", "--json")
    result = json.loads(out)
    assert not result["valid"] and fake.last_call.params.grammar is None
    assert "not one of the choices" in result["error"]


def test_run_input_from_stdin_and_file(capsys, fake, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("piped {{ target }} text"))
    code, _, _ = cli(capsys, "run", "translate", "-", "--var", "target=de")
    assert code == 0 and fake.last_call.messages[-1].content.endswith("piped {{ target }} text")
    doc = tmp_path / "doc.txt"
    doc.write_text("file body", encoding="utf-8")
    passage = tmp_path / "passage.txt"
    passage.write_text("Seoul is the capital.", encoding="utf-8")
    cli(capsys, "run", "summarize", str(doc))
    assert fake.last_call.messages[-1].content.endswith("file body")
    fake.enqueue("Seoul")
    code, out, _ = cli(capsys, "run", "qa", "capital?", "--var", f"passage=@{passage}", "--json")
    assert json.loads(out)["parsed"] == "Seoul"


def test_run_show_prompt_prints_formatted_text(capsys, fake: FakeBackend) -> None:
    code, out, _ = cli(capsys, "run", "sentiment", "great", "--show-prompt", "--shots", "1")
    assert code == 0 and out.startswith("<|im_start|>system\n") and fake.calls == []
    assert out.endswith("<|im_start|>assistant\n")


def test_run_long_input_is_cut_with_a_note(capsys, fake: FakeBackend) -> None:
    fake.context_size = 300
    code, out, err = cli(capsys, "run", "summarize", "word " * 2000, "--json")
    assert code == 0 and "note: input cut to its first" in err
    assert json.loads(out)["stats"]["truncated_input"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nope", "x"], "template 'nope': not found"),
        (["run", "sentiment"], "no input (give text, a file path, or - for stdin)"),
        (["run", "translate", "x", "--var", "target"], "--var 'target': write NAME=VALUE"),
        (["run", "translate", "x", "--var", "target=xx"], "unknown language 'xx'"),
        (["run", "translate", "x", "--var", "tone=a"], "unknown variable 'tone'"),
        (["run", "qa", "who?"], "missing required variable passage"),
        (["run", "qa", "who?", "--var", "passage=@/no/such"], "file /no/such: no such file"),
        (["run", "sentiment", "x", "--select", "best"], "example selection 'best': unknown"),
        (["run", "sentiment", "x", "--examples", "/no/such.jsonl"], "no such file"),
    ],
)
def test_run_bad_input(capsys, fake, monkeypatch, argv, message) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = cli(capsys, *argv)
    assert code == 2 and message in err and err.startswith("error: ")


def test_run_examples_file(capsys, fake, tmp_path: Path) -> None:
    extra = tmp_path / "ex.jsonl"
    extra.write_text('{"input": "it crashes", "output": "bug"}\n', encoding="utf-8")
    fake.enqueue("bug")
    code, out, _ = cli(
        capsys,
        "run",
        "classify",
        "app freezes",
        "--var",
        "labels=bug,idea",
        "--examples",
        str(extra),
        "--json",
    )
    assert code == 0 and json.loads(out)["parsed"] == "bug"
    assert [m.content for m in fake.last_call.messages if m.role == "assistant"] == ["bug"]
    extra.write_text('{"input": "x"}\n', encoding="utf-8")
    code, _, err = cli(
        capsys, "run", "classify", "x", "--var", "labels=a,b", "--examples", str(extra)
    )
    assert code == 2 and f"--examples {extra} line 1: Field required (output)" in err


def eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.jsonl"
    rows = [
        {"text": "loved it", "label": "positive"},
        {"text": "hated it", "label": "negative"},
        "{broken",
        {"text": "fine film", "label": "positive"},
        {"text": "no label here"},
    ]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_eval_compares_configurations_and_reports_bad_lines(capsys, fake, tmp_path) -> None:
    data = eval_file(tmp_path)
    out_path = tmp_path / "results.json"
    for reply in ["positive", "negative", "negative", "Positive.", "I don't know", "negative"]:
        fake.enqueue(reply)
    code, out, err = cli(
        capsys,
        "eval",
        "sentiment",
        "--data",
        str(data),
        "--shots",
        "0",
        "--constraint",
        "both",
        "--output",
        str(out_path),
    )
    assert code == 0
    assert f"{data} line 3: not valid JSON" in err and f"{data} line 5: no label" in err
    assert "sentiment · 0-shot · constrained" in out and "unconstrained" in out
    document = json.loads(out_path.read_text())
    constrained, free = document["runs"]
    assert constrained["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert constrained["metrics"]["invalid_rate"] == 0
    assert free["metrics"]["invalid_rate"] == pytest.approx(1 / 3)
    assert free["metrics"]["confusion"]["negative"] == {"(invalid)": 1}
    assert [b["line"] for b in document["data"]["bad_lines"]] == [3, 5]
    assert [i["line"] for i in constrained["items"]] == [1, 2, 4]


def test_eval_json_multiple_templates_and_defaults_saved(capsys, fake, tmp_path) -> None:
    data = eval_file(tmp_path)
    code, out, _ = cli(
        capsys,
        "eval",
        "sentiment",
        "sentiment-mc",
        "--data",
        str(data),
        "--limit",
        "2",
        "--shots",
        "0,2",
        "--select",
        "fixed,random",
        "--json",
    )
    document = json.loads(out)
    labels = [r["config"]["label"] for r in document["runs"]]
    assert labels == [
        "sentiment · 0-shot · constrained",
        "sentiment · 2-shot fixed · constrained",
        "sentiment · 2-shot random · constrained",
        "sentiment-mc · 0-shot · constrained",
        "sentiment-mc · 2-shot fixed · constrained",
        "sentiment-mc · 2-shot random · constrained",
    ]
    assert all(r["metrics"]["n"] == 2 for r in document["runs"])
    saved = list((paths.data_dir() / "evaluations").glob("*.json"))
    assert len(saved) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "/no/such.jsonl"], "evaluation file /no/such.jsonl: no such file"),
        (["--shots", "four"], "--shots 'four': give whole numbers"),
        (["--select", "best"], "--select 'best': unknown"),
        (["--constraint", "maybe"], "--constraint 'maybe': choose on, off or both"),
        (["--field", "passage"], "--field 'passage': write VARIABLE=FIELD"),
        (["--field", "passage=ctx"], "--field passage: no template here has that variable"),
        (["--var", "tone=x"], "--var tone: no template here has that variable"),
        (["--label-field", "stars"], "no usable lines (5 bad)"),
    ],
)
def test_eval_bad_input(capsys, fake, tmp_path, extra, message) -> None:
    data = eval_file(tmp_path)
    args = ["eval", "sentiment", "--data", str(data), *extra]
    if extra[0] == "--data":
        args = ["eval", "sentiment", *extra]
    code, _, err = cli(capsys, *args)
    assert code == 2 and message in err


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_eval_metrics_by_task(capsys, fake: FakeBackend, tmp_path: Path) -> None:
    summaries = write_jsonl(
        tmp_path / "sum.jsonl",
        [
            {"text": "긴 글", "label": "배우들의 연기가 정말 좋았다"},
            {"text": "long text", "label": "the cat sat on the mat"},
        ],
    )
    fake.enqueue("배우들의 연기가 좋았다")
    fake.enqueue("the cat sat on the mat")
    code, out, _ = cli(capsys, "eval", "summarize", "--data", str(summaries), "--json")
    metrics = json.loads(out)["runs"][0]["metrics"]
    assert code == 0 and 0.8 < metrics["rouge1"] < 1 and metrics["rougeL"] > 0.8

    pairs = write_jsonl(tmp_path / "mt.jsonl", [{"src": "Good morning", "ref": "좋은 아침"}])
    fake.enqueue("좋은 아침")
    code, out, _ = cli(
        capsys,
        "eval",
        "translate",
        "--data",
        str(pairs),
        "--input-field",
        "src",
        "--label-field",
        "ref",
        "--var",
        "target=ko",
        "--json",
    )
    run = json.loads(out)["runs"][0]
    assert run["metrics"]["chrf"] == pytest.approx(100) and run["config"]["variables"] == {
        "target": "ko"
    }
    assert "Translate into Korean" in fake.last_call.messages[-1].content

    questions = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"question": "When?", "context": "It opened in 1937.", "answers": ["1937"]},
            {"question": "Where?", "context": "It is in Seoul.", "answers": ["Seoul"]},
        ],
    )
    fake.enqueue("1937")
    fake.enqueue("in Busan")
    code, out, _ = cli(
        capsys,
        "eval",
        "qa",
        "--data",
        str(questions),
        "--input-field",
        "question",
        "--label-field",
        "answers",
        "--field",
        "passage=context",
        "--json",
    )
    metrics = json.loads(out)["runs"][0]["metrics"]
    assert metrics["exact_match"] == 0.5 and metrics["invalid_rate"] == 0.5

    problems = write_jsonl(
        tmp_path / "math.jsonl", [{"text": "2+2?", "label": 4}, {"text": "3+3?", "label": "6"}]
    )
    fake.enqueue("2+2 is 4.\nAnswer: 4")
    fake.enqueue("I think it is 7")
    code, out, _ = cli(
        capsys, "eval", "reasoning", "--data", str(problems), "--shots", "0", "--json"
    )
    run = json.loads(out)["runs"][0]
    assert run["config"]["label"] == "reasoning · 0-shot"
    assert run["metrics"]["accuracy"] == 0.5 and run["items"][1]["parsed"] == "7"

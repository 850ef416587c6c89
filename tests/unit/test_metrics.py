"""Evaluation metrics and the evaluation-file reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.errors import NotFoundError, UsageError
from chatapp.evaluation.dataset import load_eval_file
from chatapp.evaluation.metrics import (
    INVALID,
    answers_match,
    classification_metrics,
    qa_metrics,
    rouge_metrics,
    text_tokens,
    translation_metrics,
)


def test_classification_metrics_by_hand() -> None:
    golds = ["pos", "pos", "pos", "neg", "neg", "neg"]
    preds = ["pos", "pos", "neg", "neg", None, "Pos"]
    result = classification_metrics(golds, preds)
    assert result["accuracy"] == pytest.approx(3 / 6)
    # pos: tp 2, fp 1, fn 1 → F1 2/3; neg: tp 1, fp 1, fn 2 → P 1/2, R 1/3, F1 0.4
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0.4) / 2)
    assert result["confusion"] == {
        "neg": {"neg": 1, INVALID: 1, "pos": 1},
        "pos": {"pos": 2, "neg": 1},
    }


def test_invalid_outputs_count_as_wrong() -> None:
    result = classification_metrics(["a", "b"], [None, None])
    assert result["accuracy"] == 0 and result["macro_f1"] == 0


def test_tokens_keep_korean_and_split_cjk_characters() -> None:
    assert text_tokens("영화가 정말 재밌다!") == ["영화가", "정말", "재밌다"]
    assert text_tokens("東京に行く") == ["東", "京", "に", "行", "く"]
    assert text_tokens("Hello, World 42") == ["hello", "world", "42"]


def test_rouge_scores_korean_text() -> None:
    from rouge_score import rouge_scorer

    ref, pred = "배우들의 연기가 정말 좋았다", "배우들의 연기가 좋았다"
    default = rouge_scorer.RougeScorer(["rouge1"]).score(ref, pred)["rouge1"].fmeasure
    assert default == 0  # why we pass our own tokenizer
    scores = rouge_metrics([pred], [ref])
    assert scores["rouge1"] == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    assert 0 < scores["rouge2"] < scores["rouge1"]
    assert rouge_metrics([ref], [ref])["rougeL"] == pytest.approx(1.0)


def test_translation_metrics() -> None:
    same = translation_metrics(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same["chrf"] == pytest.approx(100) and same["bleu"] == pytest.approx(100)
    worse = translation_metrics(["a dog stood"], ["the cat sat on the mat"])
    assert worse["chrf"] < 50 and worse["bleu"] < 10
    assert (
        translation_metrics(["猫が座った"], ["猫が座った"], "Japanese")["bleu_tokenize"] == "char"
    )


def test_qa_metrics_best_over_gold_answers() -> None:
    result = qa_metrics(
        ["The Eiffel Tower", "in 1889", None], ["Eiffel Tower", ["1889", "1890"], "Paris"]
    )
    assert result["exact_match"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_reasoning_answers_compare_numbers_as_numbers() -> None:
    assert answers_match("1,000", "1000") and answers_match("4.0", 4)
    assert answers_match("No.", "no") and not answers_match("yes", "no")
    assert not answers_match(None, "1") and answers_match("7", ["6", "7"])


def test_eval_file_bad_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    lines = [
        json.dumps({"text": "good", "label": "positive"}),
        "{not json",
        json.dumps(["a", "list"]),
        "",
        json.dumps({"text": "", "label": "negative"}),
        json.dumps({"text": "no label"}),
        json.dumps({"text": "fine", "label": "negative", "passage": "P", "ctx": "C"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_eval_file(path, variable_names={"passage"})
    assert [i.line for i in data.items] == [1, 7]
    assert data.items[1].variables == {"passage": "P"}
    assert [str(b) for b in data.bad_lines] == [
        "line 2: not valid JSON (Expecting property name enclosed in double quotes)",
        "line 3: not a JSON object",
        "line 5: no text in field 'text'",
        "line 6: no label in field 'label'",
    ]
    mapped = load_eval_file(path, field_map={"passage": "ctx"})
    assert mapped.items[-1].variables == {"passage": "C"}
    assert [i.line for i in load_eval_file(path, limit=1).items] == [1]


def test_unusable_eval_files(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        load_eval_file(tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="is a folder"):
        load_eval_file(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"no usable lines \(1 bad\); first problem: line 1"):
        load_eval_file(bad)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_eval_file(binary)

"""Scores by task. Classification: accuracy, macro-F1 and a confusion table (an invalid output
counts as wrong and gets its own column). Summarization: ROUGE-1/2/L F-measure (rouge-score)
with a tokenizer that keeps non-Latin text. Translation and rewriting: chrF and BLEU (sacrebleu).
Extractive QA: exact match and token F1 (SQuAD-style normalisation). Reasoning: accuracy of the
extracted answer (numbers compared as numbers).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

INVALID = "(invalid)"

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Scripts written without spaces between words: one character = one token.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f]")


def text_tokens(text: str) -> list[str]:
    """Lower-cased words (runs of letters/digits in any script, so Korean survives), with
    Chinese/Japanese/Thai characters split one token each."""
    tokens: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if _UNSPACED.search(word):
            tokens += [piece for piece in re.split(f"({_UNSPACED.pattern})", word) if piece]
        else:
            tokens.append(word)
    return tokens


class _UnicodeTokenizer:
    """rouge-score's default tokenizer keeps only [a-z0-9] and drops Korean entirely."""

    def tokenize(self, text: str) -> list[str]:
        return text_tokens(text)


def _same_label(a: Any, b: Any) -> bool:
    return str(a).strip().casefold() == str(b).strip().casefold()


def classification_metrics(golds: Sequence[Any], preds: Sequence[Any | None]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the gold labels, and the confusion table gold → predicted."""
    labels = sorted({str(g) for g in golds})
    canon = {label.casefold(): label for label in labels}
    confusion: dict[str, dict[str, int]] = {g: {} for g in labels}
    correct = 0
    mapped: list[str] = []
    for gold, pred in zip(golds, preds, strict=True):
        name = INVALID if pred is None else canon.get(str(pred).strip().casefold(), str(pred))
        mapped.append(name)
        row = confusion[str(gold)]
        row[name] = row.get(name, 0) + 1
        correct += name == str(gold)
    f1s = []
    for label in labels:
        tp = confusion[label].get(label, 0)
        fp = sum(1 for g, p in zip(golds, mapped, strict=True) if p == label and str(g) != label)
        fn = sum(confusion[label].values()) - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {
        "accuracy": correct / len(golds) if golds else 0.0,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "confusion": confusion,
    }


def rouge_metrics(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_UnicodeTokenizer())
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for pred, ref in zip(preds, refs, strict=True):
        scores = scorer.score(ref, pred)
        for key in totals:
            totals[key] += scores[key].fmeasure
    n = max(1, len(preds))
    return {key: value / n for key, value in totals.items()}


def bleu_tokenizer(language: str | None) -> str:
    """sacrebleu tokenizer for the target language: Chinese its own, Japanese by character
    (ja-mecab needs a native library), everything else 13a (space-separated words)."""
    return {"Chinese": "zh", "Japanese": "char"}.get(language or "", "13a")


def translation_metrics(
    preds: Sequence[str], refs: Sequence[str], language: str | None = None
) -> dict[str, Any]:
    """Corpus chrF and BLEU."""
    import sacrebleu

    tokenize = bleu_tokenizer(language)
    chrf = sacrebleu.corpus_chrf(list(preds), [list(refs)])
    bleu = sacrebleu.corpus_bleu(list(preds), [list(refs)], tokenize=tokenize)
    return {"chrf": chrf.score, "bleu": bleu.score, "bleu_tokenize": tokenize}


def _normalize_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(pred: str, gold: str) -> float:
    pred_tokens = text_tokens(_normalize_answer(pred))
    gold_tokens = text_tokens(_normalize_answer(gold))
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _golds(gold: Any) -> list[str]:
    return [str(g) for g in gold] if isinstance(gold, list) else [str(gold)]


def qa_metrics(preds: Sequence[str | None], golds: Sequence[Any]) -> dict[str, float]:
    """Exact match and token F1, each the best over the gold answers (a label may be a list)."""
    em = f1 = 0.0
    for pred, gold in zip(preds, golds, strict=True):
        answers = _golds(gold)
        text = pred or ""
        em += max(float(_normalize_answer(text) == _normalize_answer(a)) for a in answers)
        f1 += max(_token_f1(text, a) for a in answers)
    n = max(1, len(preds))
    return {"exact_match": em / n, "f1": f1 / n}


def _as_number(text: str) -> float | None:
    cleaned = text.strip().replace(",", "").rstrip(".")
    try:
        return float(cleaned)
    except ValueError:
        return None


def answers_match(pred: str | None, gold: Any) -> bool:
    """A reasoning answer is right when it equals a gold answer as a number, or as text
    (case, punctuation and spacing aside)."""
    if pred is None:
        return False
    for answer in _golds(gold):
        a, b = _as_number(pred), _as_number(answer)
        if a is not None and b is not None:
            if abs(a - b) <= 1e-9 * max(1.0, abs(b)):
                return True
        elif _normalize_answer(pred) == _normalize_answer(answer):
            return True
    return False


def reasoning_metrics(preds: Sequence[str | None], golds: Sequence[Any]) -> dict[str, float]:
    right = sum(answers_match(p, g) for p, g in zip(preds, golds, strict=True))
    return {"accuracy": right / max(1, len(preds))}


def extraction_metrics(preds: Sequence[Any], golds: Sequence[Any]) -> dict[str, float]:
    """Exact match of the parsed JSON with the gold JSON."""
    right = sum(p is not None and p == g for p, g in zip(preds, golds, strict=True))
    return {"exact_match": right / max(1, len(preds))}

"""How much evidence an answer needs, and how much each ranker counts, per embedder and question
language: the refusal calibration (evidence.py decides with it), the similarity bars and the
fusion weights of hybrid search (hybrid.py)."""

from __future__ import annotations

from chatapp.config import Settings
from chatapp.embedding.embedder import BUNDLED, FAST, HASHING, embedder_key, embedder_plan
from chatapp.embedding.multilingual import MULTILINGUAL
from chatapp.retrieval.search.evidence import Calibration
from chatapp.text.language import ENGLISH, KOREAN

DEFAULT_MIN_SCORE: dict[str, dict[str, float]] = {
    BUNDLED: {"*": 0.3},
    FAST: {"*": 0.6},
    HASHING: {"*": 0.1},
    MULTILINGUAL: {"*": 0.32},
}
"""Relevance thresholds per embedder and query language (``*``: any other language), used
unless ``retrieval.min_score`` is set explicitly: similarities are not comparable across
embedders, so one number cannot serve all. MiniLM and fast: chosen on benchmarks/retrieval_eval
(English). MiniLM cannot tell Korean texts apart (unrelated Korean questions score as high as
answerable ones), so no bar of its own works there: a single-MiniLM collection keeps its old
bar, and ``auto`` collections decide Korean refusals in the USE space. USE multilingual: where
the answerable questions begin in the score distributions of both eval sets (Korean
retrieval_eval_ko and English CMake: answerable 5th percentile 0.33 / 0.39, most unanswerable
below 0.32) — tuned on those sets."""
OTHER_MIN_SCORE = 0.45
"""For sentence-transformers models named by the user (their scale is unknown to us)."""

CALIBRATION: dict[str, dict[str, Calibration]] = {
    MULTILINGUAL: {"*": Calibration(0.38, 0.6, 0.22, 0.45)},
    BUNDLED: {ENGLISH: Calibration(0.3, 0.75, 0.18, 0.45, refuse_missing=False)},
}
"""The refusal bars (evidence.Calibration) per embedder of the question's home space and
question language. USE multilingual: fitted on the Korean React and Rust dev sets together.
MiniLM for English: the dense bar is the one English questions had before (so no English
question answered before is refused now), the keyword bars fitted on the CMake set (the only
English one). The figures on sets each was not fitted on are in the README's retrieval table
(benchmarks/retrieval_protocol.py)."""
KEYWORD_BAR = 0.7
"""Keyword coverage that answers on its own where no calibration was fitted (other embedders):
coverage does not depend on the embedder."""

DENSE_WEIGHT: dict[str, dict[str, float]] = {
    BUNDLED: {ENGLISH: 1.0, "*": 0.0},
    FAST: {ENGLISH: 0.5, "*": 0.0},
    MULTILINGUAL: {"*": 1.0},
}
"""How much a space's dense ranking counts in the fusion, per embedder and query language
(1.0 unless listed). MiniLM and its static distillation are English models: their ranking of a
Korean query is noise and only drags the keyword ranking down (measured: hybrid 0.81 recall@5
against 0.97 for Kiwi BM25 alone), so it does not count for non-Latin queries. Static
embeddings rank worse than MiniLM on English, so their vote counts half there."""
BM25_WEIGHT: dict[str, float] = {KOREAN: 1.0, "*": 1.0}
"""How much the keyword ranking counts, per query language."""
FUSION: dict[str, str] = {KOREAN: "scores", "*": "ranks"}
"""How a question's rankings are merged (fusion.py): a Korean one by normalised scores, which
beat reciprocal ranks on the Korean React and Rust sets each way (chosen on one, better on the
other); English by reciprocal ranks, which the CMake set keeps (scores lost MRR there)."""


def per_language(table: dict[str, float], language: str, default: float) -> float:
    return table.get(language, table.get("*", default))


def default_threshold(embedder_setting: str, language: str = ENGLISH) -> float:
    """The similarity a chunk embedded by this embedder needs for a query in this language."""
    key = embedder_key(embedder_setting)
    table = DEFAULT_MIN_SCORE.get(key)
    return OTHER_MIN_SCORE if table is None else per_language(table, language, OTHER_MIN_SCORE)


def explicit_min_score(settings: Settings) -> float | None:
    """``retrieval.min_score`` when the user set it (config, environment or flag), else None."""
    if "min_score" in settings.retrieval.model_fields_set:
        return settings.retrieval.min_score
    return None


def relevance_threshold(
    settings: Settings, embedder_setting: str, language: str = ENGLISH
) -> float:
    """The similarity a chunk needs to count as a source: ``retrieval.min_score`` when set,
    else the default of the space a query in ``language`` goes to (for ``auto``: MiniLM for
    English, USE multilingual for Korean)."""
    explicit = explicit_min_score(settings)
    if explicit is not None:
        return explicit
    plan = embedder_plan(embedder_setting)
    return default_threshold(plan.get(language, plan.get("*", BUNDLED)), language)


def dense_weight(space: str, language: str) -> float:
    table = DENSE_WEIGHT.get(embedder_key(space))
    return 1.0 if table is None else per_language(table, language, 1.0)


def calibration(space: str, language: str) -> Calibration:
    """The refusal bars for a question in ``language`` whose home space is ``space``: the
    fitted ones, or the space's similarity bar with keyword coverage beside it."""
    table = CALIBRATION.get(embedder_key(space), {})
    fitted = table.get(language, table.get("*"))
    if fitted is not None:
        return fitted
    bar = default_threshold(space, language)
    return Calibration(bar, KEYWORD_BAR, bar, KEYWORD_BAR, refuse_missing=language != ENGLISH)

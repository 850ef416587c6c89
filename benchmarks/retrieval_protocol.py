"""The retrieval dev protocol: every value chatapp fitted (refusal bars, fusion weights) is fitted
on one eval set and reported on the others, so a figure says how the value carries to documents
it was not chosen on.

Sets: English CMake (``retrieval_eval``), Korean React (``retrieval_eval_ko``), Korean Rust book
(``retrieval_eval_ko_rust``) and a small mixed personal-notes folder (``retrieval_eval_notes``,
never fitted on: report only). Each question is searched once (``probe``): what each ranker
returned and the question's language; the values are then fitted and applied offline from
those probes, the same fusion and refusal rules as ``chatapp.retrieval.search``. ``shipped`` is
what chatapp's own search does with its constants, checked against the offline replay.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from chatapp.retrieval.search.evidence import Calibration, Evidence, decide
from chatapp.retrieval.search.fusion import fuse_ranks, fuse_scores
from chatapp.retrieval.search.hybrid import Searcher
from chatapp.retrieval.search.relevance import BM25_WEIGHT, FUSION, dense_weight, per_language

BENCH = Path(__file__).resolve().parent
POOL = 30


@dataclass(frozen=True)
class EvalSet:
    name: str
    folder: str
    fit_languages: tuple[str, ...]
    """Question languages whose values may be fitted on this set (empty: report only)."""


EVAL_SETS = (
    EvalSet("cmake", "retrieval_eval", ("en",)),
    EvalSet("react", "retrieval_eval_ko", ("ko",)),
    EvalSet("rust", "retrieval_eval_ko_rust", ("ko",)),
    EvalSet("notes", "retrieval_eval_notes", ()),
)


def read_set(folder: str) -> tuple[list[dict], list[dict]]:
    def read(file: str) -> list[dict]:
        lines = (BENCH / folder / file).read_text(encoding="utf-8").splitlines()
        return [json.loads(x) for x in lines if x.strip()]

    return read("questions.jsonl"), read("unanswerable.jsonl")


@dataclass
class Probe:
    """What one question's search saw, enough to replay fusion and refusal with other values."""

    question: str
    language: str
    gold: frozenset[str]
    """Files that answer it (empty: the set cannot answer it)."""
    kind: str
    """``answerable``, or for the others their set's ``kind`` (``near_miss``, ``off_topic``)."""
    style: str
    dense: dict[str, list[tuple[str, float]]]
    """Per space that ranks this language (dense weight > 0): (chunk id, cosine), best first."""
    home_best: float
    """The best cosine in the space that reads the question's language (what refusal reads)."""
    lexical: list[tuple[str, float]]
    files: dict[str, str]
    """Chunk id → file name."""
    shipped_files: list[str] = field(default_factory=list)
    """chatapp's own hybrid search, top 10 files."""
    shipped_refused: bool = False
    """chatapp's own calibrated search returned nothing."""
    evidence: Evidence | None = None
    """What chatapp's refusal decision read (replayed with other calibrations)."""
    decided_by: str = ""


def probe(searcher: Searcher, item: dict, answerable: bool) -> Probe:
    question = item["question"]
    plan = searcher.plan(question, calibrated=True)
    dense: dict[str, list[tuple[str, float]]] = {}
    home_best = -1.0
    for space in searcher.spaces():
        weight = dense_weight(space, plan.language)
        if weight <= 0 and space != plan.home:
            continue
        ranking = searcher.collection.store_for(space).query(
            searcher.embed_query(question, space), POOL
        )
        if space == plan.home:
            home_best = ranking[0][1] if ranking else -1.0
        if weight > 0:
            dense[space] = ranking
    lexical = searcher.lexical.top(question, POOL)
    ids = {i for ranking in dense.values() for i, _ in ranking} | {i for i, _ in lexical}
    records = searcher.collection.manifest.chunks_by_id(ids)
    files = {i: os.path.basename(r.path) for i, r in records.items()}
    gold = frozenset([item["file"], *item.get("also", [])]) if answerable else frozenset()
    result = searcher.retrieve(question, 5, calibrated=True)
    decision = result.decision
    return Probe(
        question,
        plan.language,
        gold,
        "answerable" if answerable else item.get("kind", "unanswerable"),
        item.get("style", ""),
        dense,
        home_best,
        lexical,
        files,
        [os.path.basename(h.path) for h in searcher.search(question, 10)],
        not result.hits,
        decision.evidence if decision else None,
        decision.by if decision else "",
    )


def probe_set(searcher: Searcher, folder: str) -> list[Probe]:
    questions, unanswerable = read_set(folder)
    return [probe(searcher, q, True) for q in questions] + [
        probe(searcher, q, False) for q in unanswerable
    ]


# --- replay: fusion and refusal with given values ---------------------------------------------


def ranked_files(p: Probe, bm25_weight: float, fusion: str | None = None) -> list[str]:
    """Files of the top chunks, fused as chatapp fuses the question's language (or by
    ``fusion``: ``ranks`` or ``scores``), dense weights as shipped, the BM25 weight given."""
    rankings = [*p.dense.values(), p.lexical]
    weights = [*(dense_weight(space, p.language) for space in p.dense), bm25_weight]
    how = fusion or FUSION.get(p.language, FUSION["*"])
    fused = (fuse_scores if how == "scores" else fuse_ranks)(rankings, weights)
    return [p.files.get(i, "") for i, _ in fused[:10]]


def rank_scores(files: list[str], gold: frozenset[str]) -> tuple[bool, float]:
    """(an answering file in the top 5 chunks, reciprocal rank of the first within 10)."""
    rank = next((n for n, f in enumerate(files[:10], start=1) if f in gold), None)
    return bool(rank and rank <= 5), 1.0 / rank if rank else 0.0


def ranking_metrics(probes: list[Probe], rank: Callable[[Probe], list[str]]) -> dict:
    scored = [rank_scores(rank(p), p.gold) for p in probes if p.gold]
    if not scored:
        return {}
    return {
        "recall@5": round(float(np.mean([h for h, _ in scored])), 3),
        "mrr@10": round(float(np.mean([r for _, r in scored])), 3),
        "questions": len(scored),
    }


def refusal_metrics(probes: list[Probe], refuse: Callable[[Probe], bool]) -> dict:
    """Refused counts "n/N": unanswerable (and by kind), answerable."""
    out: dict[str, str] = {}
    groups: dict[str, list[bool]] = {}
    for p in probes:
        refused = refuse(p)
        if p.gold:
            groups.setdefault("answerable", []).append(refused)
        else:
            groups.setdefault("unanswerable", []).append(refused)
            if p.kind != "unanswerable":
                groups.setdefault(p.kind, []).append(refused)
    for name in ("unanswerable", "near_miss", "off_topic", "answerable"):
        if name in groups:
            out[name] = f"{sum(groups[name])}/{len(groups[name])}"
    out["falsely_refused"] = [p.question for p in probes if p.gold and refuse(p)]  # type: ignore[assignment]
    return out


def share(counts: str) -> float:
    n, total = (int(x) for x in counts.split("/"))
    return n / total if total else 0.0


# --- fitting -----------------------------------------------------------------------------------

BM25_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
OLD_BARS = {"ko": 0.32, "en": 0.3}
"""The one cosine bar per language that decided refusals before the evidence did (USE for
Korean, MiniLM for English), replayed as the "before" row."""
MAX_FALSE_REFUSALS = 1 / 20
"""The target: at most one answerable question in twenty refused."""


def fit_bm25_weight(probes: list[Probe]) -> float:
    """The BM25 weight (dense weights as shipped) with the best MRR@10; ties go to 1.0's side."""

    def mrr(w: float) -> float:
        return ranking_metrics(probes, lambda p: ranked_files(p, w))["mrr@10"]

    return max(BM25_WEIGHTS, key=lambda w: (mrr(w), -abs(np.log(w))))


DENSE_BARS = tuple(round(x, 2) for x in np.arange(0.26, 0.53, 0.02))
COVERAGE_BARS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.01)
DENSE_TOGETHER = tuple(round(x, 2) for x in np.arange(0.14, 0.37, 0.02))
COVERAGE_TOGETHER = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 1.01)


def below(p: Probe, bar: float) -> bool:
    """Refused by one cosine bar (before the evidence decided)."""
    return p.home_best < bar


def refuses(p: Probe, bars: Calibration) -> bool:
    return p.evidence is not None and not decide(p.evidence, bars).answer


def fit_calibration(probes: list[Probe], refuse_missing: bool) -> Calibration:
    """The bars that refuse the most unanswerable questions while refusing at most one
    answerable question in twenty; among those, the fewest answerable refused, then the
    widest margins (the middle of the tied bars)."""
    have = [p for p in probes if p.evidence is not None]
    ev = np.array([[p.evidence.dense, p.evidence.coverage] for p in have])  # type: ignore[union-attr]
    missing = np.array([bool(p.evidence.missing) and refuse_missing for p in have])  # type: ignore[union-attr]
    gold = np.array([bool(p.gold) for p in have])
    allowed = MAX_FALSE_REFUSALS * gold.sum()
    scored = []
    for d in DENSE_BARS:
        for c in COVERAGE_BARS:
            for dt in DENSE_TOGETHER:
                if dt > d:
                    continue
                for ct in COVERAGE_TOGETHER:
                    if ct > c:
                        continue
                    answer = ~missing & (
                        (ev[:, 0] >= d) | (ev[:, 1] >= c) | ((ev[:, 0] >= dt) & (ev[:, 1] >= ct))
                    )
                    wrong = int((~answer & gold).sum())
                    if wrong > allowed:
                        continue
                    right = int((~answer & ~gold).sum())
                    scored.append((right, -wrong, (d, c, dt, ct)))
    best = max(r[:2] for r in scored)
    tied = np.array([r[2] for r in scored if r[:2] == best])
    # The middle of the tied region, snapped to the grid: values at its edge fit this set only.
    middle = np.median(tied, axis=0)
    d, c, dt, ct = tied[int(np.argmin(np.abs(tied - middle).sum(axis=1)))]
    return Calibration(float(d), float(c), float(dt), float(ct), refuse_missing)


# --- the report ----------------------------------------------------------------------------------


def of_language(probes: Iterable[Probe], language: str) -> list[Probe]:
    return [p for p in probes if p.language == language]


def cross_report(
    by_set: dict[str, list[Probe]], shipped: dict[str, Calibration], old_bars: dict[str, float]
) -> dict[str, dict]:
    """Per question language: the values before (one cosine bar), the shipped ones, and each
    value fitted on each fit set, with the figures on every set (``fitted_on`` names the set
    that chose the values; figures on it are marked ``tuned``)."""
    out: dict[str, dict] = {}
    for language in ("ko", "en"):
        sets = {name: of_language(ps, language) for name, ps in by_set.items()}
        sets = {name: ps for name, ps in sets.items() if ps}
        fit_sets = [s.name for s in EVAL_SETS if language in s.fit_languages and s.name in sets]
        shipped_w = per_language(BM25_WEIGHT, language, 1.0)
        bar = old_bars[language]
        rows = [
            _row(
                "before: one cosine bar",
                sets,
                shipped_w,
                {"bar": bar},
                partial(below, bar=bar),
            ),
            _row(
                "shipped",
                sets,
                shipped_w,
                shipped[language].to_dict(),
                lambda p: p.shipped_refused,
                True,
            ),
        ]
        refuse_missing = shipped[language].refuse_missing
        for name in fit_sets:
            w = fit_bm25_weight(sets[name])
            bars = fit_calibration(sets[name], refuse_missing)
            rows.append(_row(name, sets, w, bars.to_dict(), partial(refuses, bars=bars)))
        if len(fit_sets) > 1:
            joined = [p for name in fit_sets for p in sets[name]]
            bars = fit_calibration(joined, refuse_missing)
            rows.append(
                _row(
                    "+".join(fit_sets),
                    sets,
                    fit_bm25_weight(joined),
                    bars.to_dict(),
                    partial(refuses, bars=bars),
                    tuned_on=set(fit_sets),
                )
            )
        fusion = {
            how: {
                name: ranking_metrics(ps, partial(ranked_files, bm25_weight=shipped_w, fusion=how))
                for name, ps in sets.items()
            }
            for how in ("ranks", "scores")
        }
        chosen = {
            name: max(fusion, key=lambda how, n=name: fusion[how][n]["mrr@10"]) for name in fit_sets
        }
        out[language] = {
            "fit_sets": fit_sets,
            "rows": rows,
            "fusion": fusion,
            "fusion_fitted_on": chosen,
            "fusion_shipped": FUSION.get(language, FUSION["*"]),
        }
    return out


def _row(
    fitted_on: str,
    sets: dict[str, list[Probe]],
    bm25_weight: float,
    values: dict,
    refuse: Callable[[Probe], bool],
    replay_check: bool = False,
    tuned_on: set[str] | None = None,
) -> dict:
    row: dict = {"fitted_on": fitted_on, "bm25_weight": bm25_weight, "refusal": values, "sets": {}}
    for name, probes in sets.items():
        figures = ranking_metrics(probes, lambda p: ranked_files(p, bm25_weight))
        figures.update(refusal_metrics(probes, refuse))
        figures["tuned"] = name in (tuned_on or {fitted_on})
        if replay_check:
            figures["search"] = ranking_metrics(probes, lambda p: p.shipped_files)
            figures["decided_by"] = dict(sorted(Counter(p.decided_by for p in probes).items()))
        row["sets"][name] = figures
    return row


def report_lines(report: dict[str, dict]) -> list[tuple[str, str]]:
    """Printable rows: one per (language, fitted on, set)."""
    lines = []
    for language, part in report.items():
        for how, per_set in part["fusion"].items():
            figures = ", ".join(f"{n} {m['recall@5']}/{m['mrr@10']}" for n, m in per_set.items())
            picked = [n for n, h in part["fusion_fitted_on"].items() if h == how]
            lines.append(
                (
                    f"{language} fusion by {how} (chosen on {', '.join(picked) or 'none'}; "
                    f"shipped: {part['fusion_shipped']})",
                    f"recall@5/MRR@10 {figures}",
                )
            )
        for row in part["rows"]:
            values = f"BM25 weight {row['bm25_weight']}, refusal {row['refusal']}"
            for name, f in row["sets"].items():
                tag = "tuned" if f["tuned"] else "held out"
                if not any(n in row["fitted_on"] for n in row["sets"]):
                    tag = "shipped" if row["fitted_on"] == "shipped" else "before"
                quality = f"{f['recall@5']}/{f['mrr@10']}" if "recall@5" in f else "—"
                lines.append(
                    (
                        f"{language} fitted on {row['fitted_on']} ({values}) → {name} [{tag}]",
                        f"recall@5/MRR@10 {quality}; refused unanswerable "
                        f"{f.get('unanswerable', '—')} (near misses {f.get('near_miss', '—')}), "
                        f"answerable {f.get('answerable', '—')}",
                    )
                )
    return lines


def run(open_auto: Callable[[EvalSet], Searcher]) -> dict:
    """Probe every eval set through ``open_auto`` (its collection under the default pipeline,
    indexed) and report: per set, chatapp's own search; per language, each value fitted on each
    fit set and reported on all."""
    from chatapp.embedding.embedder import BUNDLED
    from chatapp.embedding.multilingual import MULTILINGUAL
    from chatapp.retrieval.search.relevance import calibration

    by_set = {s.name: probe_set(open_auto(s), s.folder) for s in EVAL_SETS}
    shipped = {"ko": calibration(MULTILINGUAL, "ko"), "en": calibration(BUNDLED, "en")}
    return {
        "sets": {s.name: s.folder for s in EVAL_SETS},
        "fit_languages": {s.name: list(s.fit_languages) for s in EVAL_SETS},
        "cross": cross_report(by_set, shipped, OLD_BARS),
    }

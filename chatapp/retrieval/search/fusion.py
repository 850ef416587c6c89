"""How the rankings of one question are merged: by reciprocal rank (RRF: only each chunk's
place counts) or by normalised scores (each ranker's scores rescaled to 0..1 over its own
candidates, then summed with the rankers' weights), per question language (``relevance.FUSION``).
Both scale the result so 1.0 means "first in every ranker"."""

from __future__ import annotations

RRF_K = 60


def fuse(
    rankings: list[list[str]], k: int = RRF_K, weights: list[float] | None = None
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: sum of weight/(k + rank) over the rankings, best first."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def fuse_ranks(
    rankings: list[list[tuple[str, float]]], weights: list[float]
) -> list[tuple[str, float]]:
    """RRF over (id, score) rankings, scaled so 1.0 is first everywhere."""
    present = [w for w, r in zip(weights, rankings, strict=True) if r]
    best = (sum(present) or 1.0) / (RRF_K + 1)
    fused = fuse([[i for i, _ in r] for r in rankings], weights=weights)
    return [(i, s / best) for i, s in fused]


def fuse_scores(
    rankings: list[list[tuple[str, float]]], weights: list[float]
) -> list[tuple[str, float]]:
    """Weighted sum of min-max normalised scores (a chunk a ranker did not return gets 0 from
    it), scaled so 1.0 is first everywhere."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        values = [s for _, s in ranking]
        low, span = min(values), (max(values) - min(values)) or 1.0
        for item, value in ranking:
            scores[item] = scores.get(item, 0.0) + weight * (value - low) / span
    total = sum(w for w, r in zip(weights, rankings, strict=True) if r) or 1.0
    return sorted(((i, s / total) for i, s in scores.items()), key=lambda kv: -kv[1])

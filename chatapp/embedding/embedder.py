"""Text embedders behind one small interface.

``SentenceTransformerEmbedder`` runs the bundled all-MiniLM-L6-v2 (or any sentence-transformers
model by name) and is the only module that imports sentence_transformers; on CPUs with native
bf16 (AVX512-BF16 or AMX) it runs a bf16 copy of the model's weights when that reproduces the
fp32 vectors (checked once at load: cosine ≥ ``BF16_MIN_COSINE``), fp32 elsewhere.
``StaticEmbedder`` is the ``fast`` mode: static token vectors distilled once from the bundled
MiniLM with model2vec (offline, cached under the cache dir), much faster to run and less exact.
``HashingEmbedder`` is a deterministic, dependency-free real implementation for fast tests.
``use-multilingual`` is Google's USE multilingual v3 (multilingual.py). ``auto``, the default
for new collections, is a ``RoutedEmbedder``: each text goes to the embedder of its language
(Latin-script text to MiniLM, Korean and other scripts to USE multilingual), decided by script
ratio per chunk and per query (``chatapp.text.language``). ``create_embedder`` turns a setting
value (``auto``, ``bundled``, ``use-multilingual``, ``fast``, ``hashing`` or a model name) into
one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from chatapp.embedding.cpu_bf16 import cpu_has_bf16
from chatapp.embedding.multilingual import MULTILINGUAL, UniversalSentenceEncoder
from chatapp.embedding.routing import (
    ChunkRouter,
    InputMaker,
    SpacePlan,
    TokenCounter,
    TokenizerCounter,
)
from chatapp.errors import ModelNotFoundError
from chatapp.text.language import ENGLISH

BUNDLED = "bundled"
FAST = "fast"
HASHING = "hashing"
AUTO = "auto"
FAST_PCA_DIMS = 256
BF16_MIN_COSINE = 0.999
SMALL_CALL = 4
"""Calls with this many texts or fewer (queries) run on one thread."""
AUTO_PLAN = {ENGLISH: BUNDLED, "*": MULTILINGUAL}
"""What ``auto`` embeds each language with: Latin-script text with MiniLM (best and fastest on
English here), everything else with USE multilingual."""
DEFAULT_EMBEDDER = AUTO
"""The embedder of a new collection unless ``retrieval.embedder`` is set explicitly."""


@runtime_checkable
class Embedder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int: ...


def _quiet_loading() -> None:
    # transformers 5 draws a "Loading weights" bar on stderr; the CLI has its own progress.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # torch's OpenMP threads spin while they wait; on a busy machine (or next to llama.cpp in
    # the same process) that made a one-line query take ~400 ms instead of ~25 ms here. Read
    # once when torch loads, so it must be set before the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers always comes with sentence-transformers
        pass


def _normalise(vectors: np.ndarray) -> np.ndarray:
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return out / norms


def _dimension_of(model: Any) -> int:
    # sentence-transformers 6 renamed the method; older releases only have the old name.
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:
        getter = model.get_sentence_embedding_dimension
    return int(getter() or 0)


class SentenceTransformerEmbedder:
    """A sentence-transformers model: the bundled MiniLM (``bundled``) or any model by name."""

    def __init__(self, model: str = BUNDLED, device: str = "cpu", batch_size: int = 32) -> None:
        _quiet_loading()
        from sentence_transformers import SentenceTransformer  # heavy: ~8 s cold

        from chatapp.models.bundled import bundled_embedder_dir

        source = str(bundled_embedder_dir()) if model == BUNDLED else model
        self.name = "all-MiniLM-L6-v2" if model == BUNDLED else model
        try:
            self._model = SentenceTransformer(source, device=device)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"embedder {model}: cannot be loaded offline ({str(exc).splitlines()[0][:160]})"
            ) from None
        self.dimension = int(_dimension_of(self._model))
        self.batch_size = batch_size
        self.max_tokens = int(self._model.max_seq_length or 256)
        backend = getattr(self._model.tokenizer, "backend_tokenizer", None)
        self._counter = TokenizerCounter(backend.to_str()) if backend is not None else None
        self._bf16_model: Any | None = None
        if device == "cpu" and cpu_has_bf16():
            self._bf16_model = self._bf16_copy_if_exact()
        self.precision = "fp32" if self._bf16_model is None else "bf16"

    def _encode(self, texts: list[str], model: Any) -> np.ndarray:
        import torch

        # A query is too small to share between threads: on a busy 2-core machine the second
        # thread's hand-offs made one query take ~155 ms instead of ~15 ms (measured).
        threads = torch.get_num_threads()
        if len(texts) <= SMALL_CALL and threads > 1:
            torch.set_num_threads(1)
        try:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        return _normalise(np.asarray(vectors, dtype=np.float32))

    def _bf16_copy_if_exact(self) -> Any | None:
        """A copy of the model with bf16 weights, if it gives the fp32 vectors on this machine.

        The whole model in bf16 does not re-cast each weight on every call as ``torch.autocast``
        does: indexing 2 MB of English in one session, alternated, 53.3 / 59.8 / 59.1 s against
        autocast's 58.4 / 61.1 / 64.6 s; 2.1-2.2x fp32 in benchmarks/retrieval.py's side-by-side
        run (autocast: 1.9-2.0x), cosine to fp32 >= 0.99989. The fp32 model stays loaded
        (~90 MB) so ``precision`` can be switched for comparisons."""
        import copy

        import torch

        probe = [
            "The quick brown fox jumps over the lazy dog.",
            "def rotate_logs(path: str, keep: int = 5) -> None: ...",
            "컴포넌트의 state는 렌더링 사이에 유지됩니다.",
        ]
        try:
            exact = self._encode(probe, self._model)
            model = copy.deepcopy(self._model).to(torch.bfloat16)
            fast = self._encode(probe, model)
        except RuntimeError:  # an op without a bf16 kernel on this build
            return None
        return model if np.min(np.sum(exact * fast, axis=1)) >= BF16_MIN_COSINE else None

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        bf16 = self.precision == "bf16" and self._bf16_model is not None
        return self._encode(list(texts), self._bf16_model if bf16 else self._model)

    def count_tokens(self, text: str) -> int:
        if self._counter is not None:
            return self._counter(text)
        return len(self._model.tokenizer.tokenize(text))

    def token_counter(self) -> TokenCounter | None:
        """``count_tokens`` as a picklable counter (None for a model without a fast
        tokenizer: its chunks are then sized in the calling process)."""
        return self._counter


def fast_model_dir() -> Path:
    """Where the distilled static embedder is cached (rebuildable)."""
    from chatapp import paths

    return paths.cache_dir() / "embedders" / f"minilm-static-{FAST_PCA_DIMS}"


def distill_fast_model(target: Path | None = None, announce: bool = True) -> Path:
    """Distil static token vectors from the bundled MiniLM with model2vec (offline; about a
    minute on two cores) and save them; later runs load the saved copy in well under a second."""
    _quiet_loading()
    from model2vec.distill import distill

    from chatapp.models.bundled import bundled_embedder_dir

    target = target or fast_model_dir()
    if announce:
        print(
            "chatapp: building the fast embedder from the bundled MiniLM (once, about a minute)…",
            file=sys.stderr,
        )
    # model2vec draws a progress bar per vocabulary batch on stderr; we announced the wait.
    with contextlib.redirect_stderr(io.StringIO()):
        model = distill(model_name=str(bundled_embedder_dir()), pca_dims=FAST_PCA_DIMS)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # atomic: a half-written model is never loaded
    return target


class StaticEmbedder:
    """Static (model2vec) embeddings: a lookup and a mean per text, no transformer at run time."""

    def __init__(self, model_dir: Path | None = None) -> None:
        from model2vec import StaticModel

        folder = model_dir or fast_model_dir()
        if not (folder / "model.safetensors").exists():
            folder = distill_fast_model(folder)
        self._model = StaticModel.from_pretrained(str(folder))
        self.name = FAST
        self.dimension = int(self._model.dim)
        self.max_tokens = 512
        self._counter = TokenizerCounter(self._model.tokenizer.to_str())

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return _normalise(self._model.encode(texts, show_progress_bar=False))

    def count_tokens(self, text: str) -> int:
        return self._counter(text)

    def token_counter(self) -> TokenCounter:
        return self._counter


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Bag of hashed words (and character trigrams) → normalised vector. Deterministic."""

    def __init__(self, dimension: int = 256) -> None:
        self.name = f"hashing-{dimension}"
        self.dimension = dimension
        self.max_tokens = 512

    def _features(self, text: str) -> list[str]:
        words = [w.lower() for w in _WORD.findall(text)]
        grams = [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
        return words + grams

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dimension
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, index] += sign
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
        return out

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def token_counter(self) -> TokenCounter:
        return self.count_tokens  # the embedder itself pickles (it holds no model)


def embedder_key(setting: str) -> str:
    """The name a collection records for an embedder setting (what ``create_embedder`` takes)."""
    value = setting.strip()
    if value in ("", BUNDLED, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return BUNDLED
    if value.startswith("hashing"):
        return HASHING
    if value.lower() in (MULTILINGUAL, "multilingual", "use", "use-multilingual-v3"):
        return MULTILINGUAL
    if value.lower() in (AUTO, "default"):
        return AUTO
    return value


def embedder_plan(setting: str) -> dict[str, str]:
    """Language → embedder key for a setting: ``auto`` routes (``AUTO_PLAN``); any other
    setting embeds every language with one embedder (``{"*": key}``)."""
    key = embedder_key(setting)
    return dict(AUTO_PLAN) if key == AUTO else {"*": key}


class RoutedEmbedder(SpacePlan):
    """The Embedder interface over several embedders, one per language (a *space*): texts go
    to the embedder of their language. ``embed`` puts one call's texts in one space — the one
    of their joined language — so vectors of one call are always comparable (a citation check
    embeds an answer and its sources together); the indexer and the searcher ask per space."""

    def __init__(
        self, plan: dict[str, str], loaded: dict[str, Embedder] | None = None, name: str = AUTO
    ) -> None:
        super().__init__(plan, BUNDLED)
        self.name = name
        self._loaded: dict[str, Embedder] = dict(loaded or {})
        self.max_tokens = 512

    @classmethod
    def single(cls, embedder: Embedder, key: str) -> RoutedEmbedder:
        """One embedder for every language (what a non-``auto`` collection has)."""
        return cls({"*": key}, {key: embedder}, name=getattr(embedder, "name", key))

    def get(self, space: str) -> Embedder:
        """The embedder of a space (loaded on first use)."""
        if space not in self._loaded:
            self._loaded[space] = create_embedder(space)
        return self._loaded[space]

    @property
    def loaded(self) -> bool:
        """Whether every space's embedder is loaded already."""
        return all(space in self._loaded for space in self.spaces)

    def embedder_for(self, text: str) -> Embedder:
        return self.get(self.space_for(text))

    @property
    def dimension(self) -> int:
        return self.get(self.spaces[0]).dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder_for("\n".join(texts)).embed(texts)

    def counter(self, space: str) -> TokenCounter:
        return self.get(space).count_tokens

    def input_maker(self, space: str) -> InputMaker | None:
        return getattr(self.get(space), "input_maker", lambda: None)()

    def chunk_router(self) -> ChunkRouter | None:
        """The plan with each space's token counter and input maker, for a reader in another
        process (None when an embedder has no picklable counter)."""
        counters: dict[str, TokenCounter] = {}
        inputs: dict[str, InputMaker] = {}
        for space in self.spaces:
            counter = getattr(self.get(space), "token_counter", lambda: None)()
            if counter is None:
                return None
            counters[space] = counter
            maker = self.input_maker(space)
            if maker is not None:
                inputs[space] = maker
        return ChunkRouter(self.plan, BUNDLED, counters, inputs)


_LOADED: dict[str, Embedder] = {}


def create_embedder(setting: str, *, reuse: bool = True) -> Embedder:
    """An embedder for a setting value: ``auto`` (routed by language), ``bundled`` (MiniLM),
    ``use-multilingual``, ``fast`` (static, distilled from MiniLM), ``hashing`` (tests and
    demos) or any sentence-transformers model name. Loaded models are kept per process so a
    batch of searches loads each once."""
    key = embedder_key(setting)
    if reuse and key in _LOADED:
        return _LOADED[key]
    embedder: Embedder
    if key == AUTO:
        embedder = RoutedEmbedder(embedder_plan(AUTO))
    elif key == MULTILINGUAL:
        embedder = UniversalSentenceEncoder()
    elif key == FAST:
        embedder = StaticEmbedder()
    elif key == HASHING:
        embedder = HashingEmbedder()
    else:
        embedder = SentenceTransformerEmbedder(key)
    if reuse:
        _LOADED[key] = embedder
    return embedder

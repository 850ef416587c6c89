"""A saved bm25s index read and scored with numpy alone.

Importing bm25s pulls in scipy's sparse matrices, which takes longer than a search; scoring a
saved index needs none of it: the index is a term × chunk matrix of precomputed BM25 weights
in compressed-column form (``data``, ``indices``, ``indptr``) and a vocabulary. ``get_scores``
is bm25s's ``BM25.get_scores`` (its ``_compute_relevance_from_scores``) step for step, so the
scores are the same numbers. Methods that add a non-occurrence term (BM25L, BM25+) are left to
bm25s (``load`` returns None); chatapp builds its indexes with the default (Lucene).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

_PLAIN_METHODS = ("lucene", "robertson", "atire")
"""Methods whose scores are the stored weights alone (no non-occurrence array)."""


class SavedBM25:
    """The parts of ``bm25s.BM25`` a search uses, over a folder written by ``BM25.save``."""

    def __init__(
        self, vocab: dict[str, int], scores: dict[str, Any], dtype: str, int_dtype: str
    ) -> None:
        self.vocab_dict = vocab
        self.scores = scores
        self.dtype = dtype
        self.int_dtype = int_dtype

    @classmethod
    def load(cls, folder: Path) -> SavedBM25 | None:
        """The index in ``folder``; None when bm25s should read it (another method, or files
        missing or unreadable)."""
        try:
            params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
            if params.get("method", "lucene") not in _PLAIN_METHODS:
                return None
            vocab = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
            scores = {
                name: np.load(folder / f"{name}.csc.index.npy", allow_pickle=False)
                for name in ("data", "indices", "indptr")
            }
        except (OSError, ValueError):
            return None
        scores["num_docs"] = int(params["num_docs"])
        return cls(
            vocab,
            scores,
            str(params.get("dtype", "float32")),
            str(params.get("int_dtype", "int32")),
        )

    def get_scores(self, query_tokens: list[str]) -> np.ndarray:
        """Each chunk's BM25 score for the tokens (a token counts once per occurrence; tokens
        outside the vocabulary count nothing)."""
        ids = np.asarray(
            [self.vocab_dict[t] for t in query_tokens if t in self.vocab_dict],
            dtype=np.dtype(self.int_dtype),
        )
        data, indices, indptr = self.scores["data"], self.scores["indices"], self.scores["indptr"]
        scores = np.zeros(self.scores["num_docs"], dtype=np.dtype(self.dtype))
        starts, ends = indptr[ids], indptr[ids + 1]
        for start, end in zip(starts, ends, strict=True):
            np.add.at(scores, indices[start:end], data[start:end])
        return scores

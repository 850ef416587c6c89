"""A collection's keyword index: BM25 (bm25s) over its chunks' terms, saved next to its manifest
and rebuilt when the manifest's generation (or the tokenizer) changes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from chatapp.retrieval.store.collection import Collection
from chatapp.retrieval.store.file_modes import writes_privately
from chatapp.retrieval.store.manifest import ChunkRecord
from chatapp.retrieval.store.saved_bm25 import SavedBM25
from chatapp.text.terms import TOKENIZER_VERSION, file_terms, tokenize


class LexicalIndex:
    """BM25 over chunk texts; ``ids[i]`` is the chunk id of document i."""

    def __init__(self, retriever: object, ids: list[str]) -> None:
        self._retriever = retriever
        self.ids = ids

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str]) -> LexicalIndex:
        """The index of texts (tokenized here)."""
        return cls.from_terms(ids, [tokenize(t) or ["∅"] for t in texts])

    @classmethod
    def from_terms(cls, ids: Sequence[str], corpus: Sequence[list[str]]) -> LexicalIndex:
        """The index of chunks given by id and terms (``chunk_terms``)."""
        import bm25s

        retriever = bm25s.BM25()
        if corpus:
            retriever.index(list(corpus), show_progress=False)
        return cls(retriever, list(ids))

    @writes_privately
    def save(self, folder: Path, generation: int) -> None:
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if self.ids:
            self._retriever.save(str(partial))  # type: ignore[attr-defined]
        (partial / "chatapp_ids.json").write_text(
            json.dumps({"generation": generation, "tokenizer": TOKENIZER_VERSION, "ids": self.ids}),
            encoding="utf-8",
        )
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)

    @classmethod
    def load(cls, folder: Path, generation: int) -> LexicalIndex | None:
        """The saved index if it matches this manifest generation, else None. Read with numpy
        alone (saved_bm25.py: bm25s's import costs more than a search) where it can be."""
        try:
            saved = json.loads((folder / "chatapp_ids.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if saved.get("generation") != generation or saved.get("tokenizer") != TOKENIZER_VERSION:
            return None
        ids = list(saved.get("ids", []))
        if not ids:
            return cls(SavedBM25({}, {}, "float32", "int32"), [])
        retriever: object | None = SavedBM25.load(folder)
        if retriever is None:
            import bm25s

            try:
                retriever = bm25s.BM25.load(str(folder))
            except Exception:
                return None
        return cls(retriever, ids)

    def top(self, query: str, n: int) -> list[tuple[str, float]]:
        """Up to n (chunk id, BM25 score) with a positive score, best first."""
        tokens = tokenize(query)
        if not tokens or not self.ids:
            return []
        scores = np.asarray(self._retriever.get_scores(tokens))  # type: ignore[attr-defined]
        n = min(n, len(scores))
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best])]
        return [(self.ids[i], float(scores[i])) for i in best if scores[i] > 0]


def load_lexical(collection: Collection) -> LexicalIndex:
    """The collection's BM25 index, rebuilt (and saved) when the manifest changed since, from
    the terms stored with each chunk; chunks without terms of this tokenizer (collections
    indexed before terms were kept, or by an older tokenizer) are analysed once and theirs
    stored."""
    manifest = collection.manifest
    generation = manifest.generation
    index = LexicalIndex.load(collection.bm25_dir, generation)
    if index is None:
        stored = manifest.all_terms(TOKENIZER_VERSION)
        missing = [i for i, terms in stored if terms is None]
        made: dict[str, list[str]] = {}
        if missing:
            by_file: dict[str, list[ChunkRecord]] = {}
            for c in manifest.chunks_by_id(missing).values():
                by_file.setdefault(c.path, []).append(c)
            for path, chunks in by_file.items():
                terms = file_terms(os.path.basename(path), [(c.heading, c.text) for c in chunks])
                made.update((c.id, t) for c, t in zip(chunks, terms, strict=True))
            manifest.save_terms(TOKENIZER_VERSION, made)
        ids = [i for i, _ in stored]
        corpus = [terms if terms is not None else made.get(i, ["∅"]) for i, terms in stored]
        index = LexicalIndex.from_terms(ids, corpus)
        index.save(collection.bm25_dir, generation)
    return index

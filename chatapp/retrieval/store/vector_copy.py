"""A copy of a collection's vectors next to its manifest, so a search needs no chromadb.

chromadb takes about a second to import and open — longer than everything else a cold
``chatapp search`` does. The vectors of a space are small (a 384-dimension chunk is 1.5 KB), so
each space's are also kept in one uncompressed ``.npz`` in the collection's folder
(``vectors/<space>.npz``: the chunk ids, their normalised vectors and the manifest generation
they belong to). A search whose manifest generation matches reads the copy and finds the
nearest chunks by one matrix product — exact cosine, where chroma's HNSW index is approximate
(on a collection of a few thousand chunks the two give the same candidates). The copy holds the
chunks the manifest lists (not the vectors a stopped run left for cleanup, which a search would
drop anyway). It is written after an index run (and by the first search after a change, which
then reads chroma); a copy that does not match the generation is never read. Collections in a
Chroma server, and spaces over ``MAX_COPY_BYTES``, are searched in chroma as before.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from chatapp.retrieval.store.file_modes import private_writes
from chatapp.retrieval.store.manifest import Manifest


class Collection(Protocol):
    """What a copy needs of a collection (collection.Collection, which imports this module)."""

    folder: Path
    chroma_url: str | None
    manifest: Manifest

    @property
    def primary_space(self) -> str: ...

    def store_for(self, space: str) -> Any: ...

    def space_counts(self) -> dict[str, int]: ...


MAX_COPY_BYTES = 256 * 2**20
"""A space whose vectors take more than this is searched in chroma (its index beats reading
them all per query)."""
FOLDER = "vectors"


def copy_path(collection: Collection, space: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", space) or "default"
    return collection.folder / FOLDER / f"{slug}.npz"


class VectorCopy:
    """One space's vectors in memory: what ``VectorStore.query`` and ``embeddings`` answer."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray, generation: int) -> None:
        self.ids = list(ids)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.generation = generation
        self._row = {chunk_id: row for row, chunk_id in enumerate(self.ids)}

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The n nearest chunk ids with their cosine similarity, best first."""
        n = min(n, len(self.ids))
        if n <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(query))
        sims = self.vectors @ (query / norm if norm else query)
        best = np.argpartition(-sims, n - 1)[:n]
        best = best[np.argsort(-sims[best], kind="stable")]
        return [(self.ids[i], float(sims[i])) for i in best]

    def embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors by id (ids the copy does not hold are left out)."""
        return {i: self.vectors[self._row[i]] for i in ids if i in self._row}


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


def _saved_generation(collection: Collection, space: str) -> int | None:
    """The generation a space's saved copy belongs to (None: none saved, or unreadable),
    read without its vectors."""
    try:
        with np.load(copy_path(collection, space), allow_pickle=False) as saved:
            return int(saved["generation"]) if str(saved["space"]) == space else None
    except (OSError, ValueError, KeyError):
        return None


def read_copy(collection: Collection, space: str, generation: int) -> VectorCopy | None:
    """The saved copy of a space if it belongs to this manifest generation."""
    try:
        with np.load(copy_path(collection, space), allow_pickle=False) as saved:
            if int(saved["generation"]) != generation or str(saved["space"]) != space:
                return None
            return VectorCopy([str(i) for i in saved["ids"]], saved["vectors"], generation)
    except (OSError, ValueError, KeyError):
        return None


def make_copy(collection: Collection, space: str) -> VectorCopy | None:
    """Read a space's vectors from the vector store and save them as the copy (None: a
    Chroma server, a space too large, or the manifest changed meanwhile). A copy that cannot
    be saved (a read-only home) still serves this process."""
    if collection.chroma_url:
        return None
    manifest = collection.manifest
    generation = manifest.generation
    primary = collection.primary_space
    ids = manifest.chunk_ids_in_space(space, include_unlabelled=space == primary)
    dimension = int(dict(manifest.get_meta("dimensions", {})).get(space, 0) or 512)
    if len(ids) * dimension * 4 > MAX_COPY_BYTES:
        return None
    stored = collection.store_for(space).embeddings(ids)
    if manifest.generation != generation:
        return None  # an index run changed the collection while this was read
    held = [i for i in ids if i in stored]
    width = len(stored[held[0]]) if held else dimension
    vectors = (
        _normalised(np.stack([stored[i] for i in held]))
        if held
        else np.zeros((0, width), dtype=np.float32)
    )
    copy = VectorCopy(held, vectors, generation)
    with contextlib.suppress(OSError):  # a read-only home: this process still uses it
        _save(copy_path(collection, space), copy, space)
    return copy


def _save(path: Path, copy: VectorCopy, space: str) -> None:
    with private_writes():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(
                    out,
                    ids=np.asarray(copy.ids, dtype=str),
                    vectors=copy.vectors,
                    generation=np.asarray(copy.generation),
                    space=np.asarray(space),
                )
            os.replace(partial, path)  # atomic: a half-written copy is never read
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise


def refresh_copies(collection: Collection) -> None:
    """Bring every space's copy up to the manifest (after an index run)."""
    if collection.chroma_url:
        return
    generation = collection.manifest.generation
    for space in collection.space_counts():
        if _saved_generation(collection, space) != generation:
            make_copy(collection, space)

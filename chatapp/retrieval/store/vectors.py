"""The vector store: chromadb, embedded (PersistentClient under the data dir) or a Chroma server
(``chroma run``; chromadb.HttpClient) when ``retrieval.chroma_url`` / ``--chroma-url`` is set.

The only module that imports chromadb (lazily). Vectors are always passed in explicitly and
collections are created without an embedding function, so chroma never fetches its default model.
Similarity is cosine (``hnsw:space = cosine``), reported as 1 − distance. Chroma holds vectors
and chunk ids only; texts and where they come from are in the manifest.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from chatapp.errors import BackendUnavailableError, RetrievalError, UsageError
from chatapp.paths import unwritable_reason
from chatapp.retrieval.store.file_modes import private_writes, tighten_tree, writes_privately

_WRITE_BATCH = 2000  # chroma rejects very large single writes


def chroma_name(collection: str) -> str:
    """Chroma's name for a chatapp collection: chroma allows only [A-Za-z0-9._-], 3-512 chars,
    while chatapp names may be any word characters (Korean included), so add a short hash."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", collection).strip("-_")[:40] or "c"
    digest = hashlib.sha1(collection.encode("utf-8")).hexdigest()[:8]
    return f"chatapp-{slug}-{digest}"


def _chroma_settings() -> Any:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


def _readable_copy(path: Path) -> Path:
    """A private copy of a vector store in a folder that cannot be written (a read-only
    mount): chromadb opens its files for writing, so reads go to the copy, deleted when the
    process ends. Writing to it (indexing) is refused earlier, at the collection's lock."""
    import atexit
    import shutil
    import tempfile

    copy = Path(tempfile.mkdtemp(prefix="chatapp-chroma-")) / "chroma"  # mkdtemp: 0700
    shutil.copytree(path, copy)
    atexit.register(shutil.rmtree, copy.parent, True)
    return copy


def open_client(chroma_url: str | None, local_path: Path) -> Any:
    """A chromadb client: HttpClient for a server URL, else PersistentClient at local_path."""
    import chromadb

    if not chroma_url:
        if local_path.is_dir() and unwritable_reason(local_path) is not None:
            local_path = _readable_copy(local_path)  # a read-only home: search still works
        try:
            with private_writes():
                client = chromadb.PersistentClient(
                    path=str(local_path), settings=_chroma_settings()
                )
        except Exception as exc:
            first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise RetrievalError(f"vector store {local_path}: cannot be opened ({first})") from None
        tighten_tree(local_path)  # what an older version left readable
        return client
    parsed = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"chroma URL {chroma_url}: not an http(s)://host:port URL")
    ssl = parsed.scheme == "https"
    port = parsed.port or (443 if ssl else 8000)
    try:
        client = chromadb.HttpClient(
            host=parsed.hostname, port=port, ssl=ssl, settings=_chroma_settings()
        )
        client.heartbeat()
    except Exception:
        raise BackendUnavailableError(
            f"chroma server {chroma_url}: cannot be reached (is `chroma run` running there?)"
        ) from None
    return client


class VectorStore:
    """One chatapp collection's vectors of one embedding space in chroma; ids are chunk ids
    from the manifest. The collection's first space keeps the plain name (collections made
    before spaces existed are found as they were); others are named ``<collection>@<space>``."""

    def __init__(
        self, client: Any, name: str, *, url: str | None = None, space: str | None = None
    ) -> None:
        self._client = client
        self.space = space
        self.name = chroma_name(f"{name}@{space}" if space else name)
        self.url = url
        try:
            with private_writes():
                self._collection = client.get_or_create_collection(
                    self.name,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"chatapp_collection": name},
                )
        except Exception as exc:
            raise self._error("cannot open collection", exc) from None

    def _error(self, what: str, exc: Exception) -> Exception:
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        if self.url:
            return BackendUnavailableError(f"chroma server {self.url}: {what} ({first})")
        return RetrievalError(f"vector store: {what} ({first})")

    def count(self) -> int:
        return int(self._collection.count())

    @writes_privately
    def upsert(self, ids: Sequence[str], embeddings: np.ndarray) -> None:
        """Write vectors by chunk id. Only vectors: a chunk's text, file and lines live in the
        collection's manifest, so a Chroma server never holds the documents' text, and a write
        costs ~0.6 of one with texts and metadata (chroma's text index, measured)."""
        for start in range(0, len(ids), _WRITE_BATCH):
            end = start + _WRITE_BATCH
            try:
                self._collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=np.asarray(embeddings[start:end], dtype=np.float32),
                )
            except Exception as exc:
                raise self._error("write failed", exc) from None

    @writes_privately
    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _WRITE_BATCH):
            try:
                self._collection.delete(ids=list(ids[start : start + _WRITE_BATCH]))
            except Exception as exc:
                raise self._error("delete failed", exc) from None

    def ids(self) -> list[str]:
        """Every id the store holds (read in pages: chroma caps a single read)."""
        out: list[str] = []
        while True:
            try:
                got = self._collection.get(include=[], limit=_WRITE_BATCH, offset=len(out))
            except Exception as exc:
                raise self._error("read failed", exc) from None
            out.extend(got["ids"])
            if len(got["ids"]) < _WRITE_BATCH:
                return out

    def embeddings(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id (ids the store does not hold are left out)."""
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), _WRITE_BATCH):
            try:
                got = self._collection.get(
                    ids=list(ids[start : start + _WRITE_BATCH]), include=["embeddings"]
                )
            except Exception as exc:
                raise self._error("read failed", exc) from None
            vectors = got.get("embeddings")
            if vectors is None:
                continue
            for chunk_id, vector in zip(got["ids"], vectors, strict=False):
                out[chunk_id] = np.asarray(vector, dtype=np.float32)
        return out

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The n nearest chunk ids with their cosine similarity, best first."""
        if n <= 0:
            return []
        try:
            got = self._collection.query(
                query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
                n_results=n,
                include=["distances"],
            )
        except Exception as exc:
            raise self._error("query failed", exc) from None
        ids = got["ids"][0] if got["ids"] else []
        distances = (got.get("distances") or [[]])[0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=False)]

    @writes_privately
    def drop(self) -> None:
        try:
            self._client.delete_collection(self.name)
        except Exception as exc:
            if "does not exist" not in str(exc).lower():
                raise self._error("cannot delete collection", exc) from None

"""Named document collections: where each one lives, what it was built with, list/info/remove.

Layout under ``paths.collections_dir()``: ``chroma/`` holds the embedded vector store shared by
all collections; ``manifests/<name>/`` holds a collection's manifest and BM25 index. Collections
in a Chroma server keep their manifest under ``servers/<host-port>/<name>/``. A collection
remembers its embedder and chunk size; searching it always uses that embedder. An ``auto``
collection holds several embedding spaces (one chroma collection each, see vectors.py); each chunk
records its space, so a collection switched to another embedder (``chatapp index --reembed``)
stays searchable while it is re-embedded, and an old single-embedder collection works as it was.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from chatapp import paths
from chatapp.config import Settings
from chatapp.embedding.embedder import embedder_key, embedder_plan
from chatapp.errors import NotFoundError, UsageError
from chatapp.retrieval.store.file_modes import private_writes, tighten_tree
from chatapp.retrieval.store.manifest import Manifest
from chatapp.retrieval.store.vector_copy import VectorCopy, make_copy, read_copy
from chatapp.retrieval.store.vectors import VectorStore, open_client

_NAME = re.compile(r"^\w[\w.-]{0,63}$", re.UNICODE)
MANIFEST_FILE = "manifest.sqlite"


def check_name(name: str) -> str:
    """A collection name: 1-64 letters (any script), digits, ``_ . -``; starts with a letter or
    digit."""
    if not _NAME.match(name or ""):
        raise UsageError(
            f"collection name {name!r}: use 1-64 letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return name


def _server_slug(url: str) -> str:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{parsed.hostname}-{parsed.port or 8000}")


def manifests_root(chroma_url: str | None) -> Path:
    base = paths.collections_dir()
    return base / "servers" / _server_slug(chroma_url) if chroma_url else base / "manifests"


@dataclass
class CollectionInfo:
    """What ``chatapp collections info`` shows."""

    name: str
    files: int
    chunks: int
    embedder: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    roots: list[str] = field(default_factory=list)
    spaces: dict[str, int] = field(default_factory=dict)
    """Chunks per embedding space (embedder)."""
    created_at: float | None = None
    updated_at: float | None = None
    store: str = "local"
    manifest: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Collection:
    """An open collection: its manifest now, its vector store on first use."""

    def __init__(self, name: str, folder: Path, chroma_url: str | None) -> None:
        self.name = name
        self.folder = folder
        self.chroma_url = chroma_url
        # What an older version left readable (bm25/ and manifests/ were 0755/0644).
        paths.make_private(folder.parent)
        tighten_tree(folder)
        self.manifest = Manifest(folder / MANIFEST_FILE)
        self._client: Any = None
        self._stores: dict[str, VectorStore] = {}
        self._copies: dict[str, tuple[int, VectorCopy | None]] = {}
        self._copies_used = False

    @property
    def store(self) -> VectorStore:
        """The vector store of the first space (the only one of a single-embedder collection)."""
        return self.store_for(self.primary_space)

    def store_for(self, space: str) -> VectorStore:
        """The vector store of one embedding space, opened lazily (chromadb costs about a
        second to import)."""
        space = space or self.primary_space
        if space not in self._stores:
            if self._client is None:
                self._client = open_client(self.chroma_url, paths.collections_dir() / "chroma")
            plain = space == self.primary_space
            self._stores[space] = VectorStore(
                self._client, self.name, url=self.chroma_url, space=None if plain else space
            )
            if space not in self.known_spaces():
                self.manifest.set_meta("spaces", [*self.known_spaces(), space])
        return self._stores[space]

    def search_vectors(self, space: str) -> VectorStore | VectorCopy:
        """What a search reads a space's vectors from: the local copy that matches the
        manifest (vector_copy.py: no chromadb), else the vector store."""
        space = space or self.primary_space
        generation = self.manifest.generation
        known = self._copies.get(space)
        if known is None or known[0] != generation:
            known = (generation, read_copy(self, space, generation) or make_copy(self, space))
            self._copies[space] = known
        if known[1] is None:
            return self.store_for(space)
        if self._client is None and not self._copies_used:
            # What opening the store would have done: an older version left it readable.
            tighten_tree(paths.collections_dir() / "chroma")
            self._copies_used = True
        return known[1]

    @property
    def embedder_setting(self) -> str:
        return str(self.manifest.get_meta("embedder", "bundled"))

    @property
    def plan(self) -> dict[str, str]:
        """Language → embedder key (``{"*": key}`` for a single-embedder collection)."""
        return embedder_plan(self.embedder_setting)

    @property
    def primary_space(self) -> str:
        """The space whose store has the collection's plain chroma name; chunks recorded
        before spaces existed ('') are in it."""
        recorded = self.manifest.get_meta("primary_space")
        if recorded:
            return str(recorded)
        return next(iter(self.plan.values()))

    def known_spaces(self) -> list[str]:
        """Every space this collection has written vectors to (its stores to drop)."""
        return list(self.manifest.get_meta("spaces", [])) or [self.primary_space]

    def space_counts(self) -> dict[str, int]:
        """Chunks per space, '' counted as the primary space."""
        out: dict[str, int] = {}
        for space, n in self.manifest.space_counts().items():
            key = space or self.primary_space
            out[key] = out.get(key, 0) + n
        return out

    def delete_vectors(self, ids: list[str]) -> None:
        """Delete chunk vectors from every space's store (ids do not say their space; deleting
        an id a store does not hold is a no-op)."""
        for space in self.known_spaces():
            self.store_for(space).delete(ids)

    def remember_dimension(self, space: str, dimension: int) -> None:
        if self.manifest.get_meta("dimension") is None:
            self.manifest.set_meta("dimension", dimension)
        dimensions = dict(self.manifest.get_meta("dimensions", {}))
        if dimensions.get(space) != dimension:
            dimensions[space] = dimension
            self.manifest.set_meta("dimensions", dimensions)

    def drop_unused_spaces(self) -> None:
        """After a complete re-embedding: drop the stores of spaces no chunk is in any more."""
        used = set(self.space_counts())
        keep = [s for s in self.known_spaces() if s in used]
        for space in self.known_spaces():
            if space not in used:
                self.store_for(space).drop()
                self._stores.pop(space, None)
        self.manifest.set_meta("spaces", keep)

    def switch_embedder(self, setting: str) -> None:
        """Record a new embedder; chunks keep their vectors (and stay searchable) until the
        next index run re-embeds them (``Indexer`` with ``IndexOptions.reembed``)."""
        if self.manifest.get_meta("primary_space") is None:
            self.manifest.set_meta("primary_space", self.primary_space)
        self.manifest.set_meta("embedder", embedder_key(setting))

    @property
    def bm25_dir(self) -> Path:
        return self.folder / "bm25"

    def make_private(self) -> None:
        """Take group and other permissions off everything the collection keeps on this
        machine (its folder, and the local vector store when it is one)."""
        tighten_tree(self.folder)
        if not self.chroma_url:
            tighten_tree(paths.collections_dir() / "chroma")

    def info(self) -> CollectionInfo:
        files, chunks = self.manifest.counts()
        meta = self.manifest.get_meta
        return CollectionInfo(
            name=self.name,
            files=files,
            chunks=chunks,
            embedder=self.embedder_setting,
            dimension=int(meta("dimension", 0)),
            chunk_tokens=int(meta("chunk_tokens", 0)),
            chunk_overlap=int(meta("chunk_overlap", 0)),
            roots=list(meta("roots", [])),
            spaces=self.space_counts(),
            created_at=meta("created_at"),
            updated_at=meta("updated_at"),
            store=self.chroma_url or "local",
            manifest=str(self.manifest.path),
        )

    def close(self) -> None:
        self.manifest.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _folder(name: str, chroma_url: str | None) -> Path:
    return manifests_root(chroma_url) / check_name(name)


def resolve_url(settings: Settings, chroma_url: str | None = None) -> str | None:
    return chroma_url or settings.retrieval.chroma_url or None


def collection_exists(name: str, chroma_url: str | None = None) -> bool:
    return (_folder(name, chroma_url) / MANIFEST_FILE).exists()


def open_collection(name: str, chroma_url: str | None = None) -> Collection:
    """An existing collection; NotFoundError naming it (and the ones there are) otherwise."""
    folder = _folder(name, chroma_url)
    if not (folder / MANIFEST_FILE).exists():
        known = [c.name for c in list_collections(chroma_url)]
        hint = f" (collections: {', '.join(known)})" if known else " (none yet: chatapp index PATH)"
        raise NotFoundError(f"collection {name}: not found{hint}")
    return Collection(name, folder, chroma_url)


def create_or_open(
    name: str,
    *,
    embedder: str,
    chunk_tokens: int,
    chunk_overlap: int,
    chroma_url: str | None = None,
    strict: bool = True,
) -> Collection:
    """Open a collection for indexing, creating it with these settings the first time. An
    existing collection keeps its embedder; with ``strict`` (an embedder named explicitly)
    asking for another one is an error, not a silent mix of incompatible vectors."""
    folder = _folder(name, chroma_url)
    existed = (folder / MANIFEST_FILE).exists()
    with private_writes():
        folder.mkdir(parents=True, exist_ok=True)
    collection = Collection(name, folder, chroma_url)
    wanted = embedder_key(embedder)
    if existed and collection.manifest.get_meta("embedder") is not None:
        have = collection.embedder_setting
        if strict and have != wanted:
            collection.close()
            raise UsageError(
                f"collection {name}: built with embedder '{have}', not '{wanted}' "
                f"(switch it with `chatapp index -C {name} --reembed --embedder {wanted}`, "
                "or use another collection name)"
            )
        return collection
    manifest = collection.manifest
    manifest.set_meta("name", name)
    manifest.set_meta("embedder", wanted)
    manifest.set_meta("primary_space", next(iter(embedder_plan(wanted).values())))
    manifest.set_meta("chunk_tokens", chunk_tokens)
    manifest.set_meta("chunk_overlap", chunk_overlap)
    manifest.set_meta("created_at", time.time())
    return collection


def list_collections(chroma_url: str | None = None) -> list[CollectionInfo]:
    root = manifests_root(chroma_url)
    infos: list[CollectionInfo] = []
    if not root.exists():
        return infos
    for folder in sorted(root.iterdir()):
        if (folder / MANIFEST_FILE).exists():
            with Collection(folder.name, folder, chroma_url) as collection:
                infos.append(collection.info())
    return infos


def remove_collection(name: str, chroma_url: str | None = None) -> CollectionInfo:
    """Delete a collection's vectors and its manifest; returns what it held."""
    collection = open_collection(name, chroma_url)
    try:
        info = collection.info()
        for space in collection.known_spaces():
            collection.store_for(space).drop()
    finally:
        collection.close()
    shutil.rmtree(collection.folder, ignore_errors=True)
    return info

"""``chatapp collections check NAME``: does the vector store hold exactly what the manifest
lists, and if not, make it so.

The manifest is the source of truth (see ``manifest``). What can drift, and the repair:

- vectors in the store that no chunk row names (a run killed between writing and recording,
  two indexers racing before collections were locked): deleted;
- chunk rows whose vector is missing (a store restored from an older copy, a crashed delete):
  embedded again from the chunk text the manifest keeps, with the collection's own embedder;
- a file row whose chunk rows are not all there, or chunk rows with no file row: the file is
  forgotten, so the next ``chatapp index`` reads it afresh;
- the intent log (``pending``): settled.

The check holds the collection's lock, so it never races an indexer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from chatapp.embedding.embedder import Embedder, create_embedder
from chatapp.retrieval.store.collection import Collection
from chatapp.retrieval.store.lock import collection_lock


@dataclass
class CheckReport:
    """What the check found (and, unless ``dry_run``, repaired)."""

    collection: str
    files: int = 0
    chunks: int = 0
    vectors: int = 0
    orphan_vectors: int = 0
    """In the store, listed by no chunk row."""
    missing_vectors: int = 0
    """Listed by a chunk row, absent from the store."""
    incomplete_files: list[str] = field(default_factory=list)
    """Files whose chunk rows do not match their record (forgotten: the next index re-reads)."""
    pending: int = 0
    repaired: bool = False

    @property
    def consistent(self) -> bool:
        return not (
            self.orphan_vectors or self.missing_vectors or self.incomplete_files or self.pending
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["consistent"] = self.consistent
        return data

    def lines(self, shown: Callable[[str], str] = str, *, dry_run: bool = False) -> list[str]:
        """The report for a person: counts, each problem and what was done about it."""
        out = [
            f"collection '{self.collection}': {self.files} files, {self.chunks} chunks, "
            f"{self.vectors} vectors in the store"
        ]
        if self.orphan_vectors:
            done = "left as they are" if dry_run else "deleted"
            out.append(f"  {self.orphan_vectors} vectors that no chunk lists: {done}")
        if self.missing_vectors:
            done = "left as they are" if dry_run else "embedded again from the manifest"
            out.append(f"  {self.missing_vectors} chunks without a vector: {done}")
        for path in self.incomplete_files:
            done = "left as it is" if dry_run else "forgotten; `chatapp index` reads it again"
            out.append(f"  incomplete record of {shown(path)}: {done}")
        if self.pending:
            done = "left as they are" if dry_run else "settled"
            out.append(f"  {self.pending} unfinished changes in the intent log: {done}")
        if self.consistent:
            out.append("  ok: the store holds exactly what the manifest lists")
        elif dry_run:
            out.append("  run without --dry-run to repair")
        else:
            out.append("  repaired: the store now holds exactly what the manifest lists")
        return out


def check_collection(
    collection: Collection,
    *,
    repair: bool = True,
    embedder_factory: Callable[[], Embedder] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> CheckReport:
    """Compare the manifest with the store; with ``repair``, bring the store in line."""
    with collection_lock(collection.folder, collection.name, on_wait=on_wait):
        report = _compare(collection)
        if repair and not report.consistent:
            factory = embedder_factory or (lambda: create_embedder(collection.embedder_setting))
            _repair(collection, report, factory)
            report.repaired = True
    return report


def _compare(collection: Collection) -> CheckReport:
    manifest = collection.manifest
    files = manifest.files()
    chunks = manifest.all_chunks()
    stored = set(collection.store.ids())
    listed = {c.id for c in chunks}
    rows_per_path = Counter(c.path for c in chunks)
    incomplete = sorted(
        {p for p, record in files.items() if rows_per_path.get(p, 0) != record.n_chunks}
        | {p for p in rows_per_path if p not in files}
    )
    return CheckReport(
        collection=collection.name,
        files=len(files),
        chunks=len(chunks),
        vectors=len(stored),
        orphan_vectors=len(stored - listed),
        missing_vectors=len(listed - stored),
        incomplete_files=incomplete,
        pending=len(manifest.pending_cleanup()),
    )


def _repair(
    collection: Collection, report: CheckReport, embedder_factory: Callable[[], Embedder]
) -> None:
    from chatapp.retrieval.ingest.indexing import embed_text

    manifest, store = collection.manifest, collection.store
    for path in report.incomplete_files:
        manifest.remove_file(path)  # its chunk ids go to the intent log, deleted below
    chunks = manifest.all_chunks()
    listed = {c.id for c in chunks}
    stored = set(store.ids())
    orphans = sorted(stored - listed)
    if orphans:
        store.delete(orphans)
    missing = [c for c in chunks if c.id not in stored]
    if missing:
        embedder = embedder_factory()
        for start in range(0, len(missing), 256):
            part = missing[start : start + 256]
            vectors = np.asarray(
                embedder.embed([embed_text(c.path, c) for c in part]), dtype=np.float32
            )
            store.upsert([c.id for c in part], vectors)
    manifest.clear_pending()
    from chatapp.retrieval.store.keywords import load_lexical

    load_lexical(collection)  # keyword search follows the repaired manifest
    from chatapp.retrieval.store.vector_copy import refresh_copies

    refresh_copies(collection)  # and so does the vectors' copy

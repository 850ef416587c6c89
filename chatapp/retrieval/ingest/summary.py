"""What an indexing run is told (options), reports while it runs (progress) and reports at the
end (summary)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chatapp.retrieval.ingest.loaders import DEFAULT_MAX_FILE_BYTES

EMBED_BATCH = 64
"""Chunks per embedding call: large enough to keep the model busy, small enough that a stop
waits little (a stop is checked between calls)."""

WRITE_BATCH_MAX = 256
"""Chunks per written batch once a run is under way. The first batch is ``batch_chunks`` (the
embedder starts early); each next one doubles up to this. A batch is embedded in calls of
``EMBED_BATCH`` chunks of like length (sorted by tokens), so a model that pads each call to its
longest text (MiniLM) pads less: across 256 English chunks ~5 % of its tokens are padding,
across 64 ~15 % (measured on chunks of the generated English folder)."""


@dataclass
class IndexOptions:
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    include_hidden: bool = False
    respect_gitignore: bool = True
    follow_symlinks: bool = False
    """Follow symlinks that lead outside the folders being indexed (off: they are skipped)."""
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    batch_chunks: int = EMBED_BATCH
    """Chunks in the first written batch; later ones grow to ``WRITE_BATCH_MAX``."""
    reembed: bool = False
    """Also redo unchanged files whose chunks are not in the space their language routes to
    now (after ``Collection.switch_embedder``)."""
    reader_process: bool | None = None
    """Prepare files in a reader process: None decides by the run's size and the cores
    (``reader_process.wants_process``); False keeps them on the reader thread."""


@dataclass
class IndexProgress:
    files_total: int
    files_done: int
    chunks_done: int
    elapsed_s: float
    current: str | None = None

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class IndexSummary:
    """What a run did; ``chatapp index`` prints it and ``--json`` returns it."""

    collection: str
    indexed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    chunks_added: int = 0
    chunks_reused: int = 0
    files_total: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    embed_s: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.indexed or self.removed or self.renamed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        data["renamed"] = [{"from": a, "to": b} for a, b in self.renamed]
        return data

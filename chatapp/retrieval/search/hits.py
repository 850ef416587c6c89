"""One result of a search: a chunk with where it is, its scores and the bar it was held to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SearchHit:
    rank: int
    score: float
    similarity: float
    path: str
    start_line: int | None
    end_line: int | None
    page: int | None
    heading: str
    text: str
    chunk_id: str
    space: str = ""
    """The embedder whose vectors the similarity compares."""
    language: str = ""
    """The query's language (``ko``, ``en``, …) as decided by script ratio."""
    threshold: float | None = None
    """The similarity this hit needed (None: no threshold applied)."""

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of one result."""
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "similarity": round(self.similarity, 4),
            "threshold": self.threshold,
            "language": self.language,
            "space": self.space,
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "page": self.page,
            "heading": self.heading,
            "text": self.text,
        }

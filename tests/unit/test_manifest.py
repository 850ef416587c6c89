"""The manifest: per-file swaps are all-or-nothing, the intent log finds vectors a stopped run
left behind, and every change bumps the generation that keyword search rebuilds on."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.errors import RetrievalError
from chatapp.retrieval.store.manifest import ChunkRecord, FileRecord, Manifest


def record(path: str, sha: str, n: int) -> FileRecord:
    return FileRecord(path, 10, 1, sha, "text", n, 0.0)


def chunks(path: str, sha: str, n: int) -> list[ChunkRecord]:
    return [
        ChunkRecord(f"{sha}-{i}", path, i, f"text {i}", i + 1, i + 1, None, "") for i in range(n)
    ]


def test_replace_file_swaps_chunks_and_marks_old_ids(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite") as manifest:
        start = manifest.generation
        manifest.mark_pending_adds([c.id for c in chunks("/a", "v1", 2)])
        manifest.replace_file(record("/a", "v1", 2), chunks("/a", "v1", 2), [])
        assert manifest.pending_cleanup() == []  # recorded adds are no longer pending
        manifest.mark_pending_adds([c.id for c in chunks("/a", "v2", 1)])
        manifest.replace_file(record("/a", "v2", 1), chunks("/a", "v2", 1), ["v1-0", "v1-1"])
        assert manifest.chunk_ids("/a") == ["v2-0"]
        assert sorted(manifest.pending_cleanup()) == ["v1-0", "v1-1"]
        manifest.clear_pending(["v1-0", "v1-1"])
        assert manifest.pending_cleanup() == []
        assert manifest.generation == start + 2
        assert manifest.files()["/a"].sha256 == "v2"


def test_adds_never_recorded_are_found_for_cleanup(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.mark_pending_adds(["orphan-0", "orphan-1"])  # then the run stopped
    with Manifest(tmp_path / "m.sqlite") as manifest:
        assert sorted(manifest.pending_cleanup()) == ["orphan-0", "orphan-1"]


def test_failed_swap_leaves_the_old_file(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.replace_file(record("/a", "v1", 1), chunks("/a", "v1", 1), [])
        broken = [*chunks("/a", "v2", 1), *chunks("/a", "v2", 1)]  # duplicate ids → error mid-way
        broken[1] = ChunkRecord("v2-0", "/a", 0, None, None, None, None, "")  # type: ignore[arg-type]
        with pytest.raises(Exception):  # noqa: B017 - sqlite's IntegrityError
            manifest.replace_file(record("/a", "v2", 2), broken, ["v1-0"])
        assert manifest.chunk_ids("/a") == ["v1-0"]
        assert manifest.files()["/a"].sha256 == "v1"


def test_remove_file_returns_its_ids(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.replace_file(record("/a", "v1", 2), chunks("/a", "v1", 2), [])
        assert manifest.remove_file("/a") == ["v1-0", "v1-1"]
        assert manifest.files() == {} and manifest.counts() == (0, 0)


def test_corrupt_manifest_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "m.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RetrievalError, match=r"collection manifest .*m.sqlite: cannot be opened"):
        Manifest(bad)

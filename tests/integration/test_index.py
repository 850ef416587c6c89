"""Incremental indexing into real chromadb (tmp dirs) with the deterministic HashingEmbedder:
unchanged files cost nothing, changes/removals/renames are applied, a stopped run leaves every
file fully old or fully new and the next run finishes, bad files are skipped with reasons."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from chatapp.embedding.embedder import HashingEmbedder
from chatapp.retrieval.ingest.discovery import discover
from chatapp.retrieval.ingest.indexing import Indexer, IndexOptions, index_paths
from chatapp.retrieval.store.collection import Collection, create_or_open
from tests.support.documents import CORPUS, write_corpus
from tests.support.signals import default_sigint


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting how many texts it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().embed(texts)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs", CORPUS)


@pytest.fixture
def collection() -> Collection:
    coll = create_or_open("notes", embedder="hashing", chunk_tokens=60, chunk_overlap=8)
    yield coll
    coll.close()


def run(coll: Collection, roots: list[Path], embedder: CountingEmbedder | None = None, **kw):
    embedder = embedder or CountingEmbedder()
    return index_paths(coll, roots, lambda: embedder, **kw), embedder


def consistent(coll: Collection) -> set[str]:
    """The store holds exactly the manifest's chunks; returns their ids."""
    manifest_ids = {c.id for c in coll.manifest.all_chunks()}
    assert coll.store.count() == len(manifest_ids)
    assert set(coll.store.embeddings(sorted(manifest_ids))) == manifest_ids
    return manifest_ids


def test_first_run_indexes_everything_and_second_run_nothing(collection, corpus) -> None:
    summary, embedder = run(collection, [corpus])
    assert len(summary.indexed) == 4 and summary.skipped == []
    assert embedder.embedded == summary.chunks_added > 0
    ids = consistent(collection)
    again, embedder2 = run(collection, [corpus])
    assert again.indexed == [] and again.unchanged == 4 and embedder2.embedded == 0
    assert consistent(collection) == ids
    (corpus / "garden/roses.md").touch()  # new mtime, same bytes: no re-embedding
    touched, embedder3 = run(collection, [corpus])
    assert touched.unchanged == 4 and embedder3.embedded == 0


def test_changed_removed_and_renamed_files(collection, corpus) -> None:
    run(collection, [corpus])
    before = {c.path: c.id for c in collection.manifest.all_chunks()}
    (corpus / "garden/tomatoes.md").write_text("# Tomatoes\n\nNow they need shade.\n", "utf-8")
    (corpus / "kitchen/bread.txt").unlink()
    shutil.move(corpus / "garden/roses.md", corpus / "garden/old-roses.md")
    summary, embedder = run(collection, [corpus])
    assert summary.indexed == [str(corpus / "garden/tomatoes.md")]
    assert summary.removed == [str(corpus / "kitchen/bread.txt")]
    assert summary.renamed == [
        (str(corpus / "garden/roses.md"), str(corpus / "garden/old-roses.md"))
    ]
    assert summary.chunks_reused > 0
    assert embedder.embedded == summary.chunks_added == 1  # only the changed file was embedded
    ids = consistent(collection)
    assert before[str(corpus / "garden/tomatoes.md")] not in ids
    paths = {c.path for c in collection.manifest.all_chunks()}
    assert str(corpus / "kitchen/bread.txt") not in paths
    assert str(corpus / "garden/old-roses.md") in paths


def test_other_roots_are_left_alone(collection, corpus, tmp_path) -> None:
    other = write_corpus(tmp_path / "other", {"x.md": "# X\n\nSomething else entirely.\n"})
    run(collection, [corpus])
    summary, _ = run(collection, [other])
    assert summary.removed == []
    assert collection.manifest.counts()[0] == 5
    assert collection.manifest.get_meta("roots") == [str(corpus), str(other)]


def test_interrupted_run_is_consistent_and_resumes(collection, tmp_path) -> None:
    files = {f"doc{i:02}.md": f"# Doc {i}\n\nFact number {i} is {i * 7}.\n" for i in range(30)}
    corpus = write_corpus(tmp_path / "many", files)
    run(collection, [corpus])
    for i in range(30):  # change every file, then stop part-way through
        (corpus / f"doc{i:02}.md").write_text(f"# Doc {i}\n\nNew fact {i} is {i * 9}.\n", "utf-8")
    calls = {"n": 0}

    def stop_after_first_batch(progress) -> None:
        calls["n"] += 1
        if progress.chunks_done > 0:
            raise KeyboardInterrupt

    options = IndexOptions(batch_chunks=4)
    summary, _ = run(collection, [corpus], options=options, on_progress=stop_after_first_batch)
    assert summary.interrupted and 0 < len(summary.indexed) < 30
    consistent(collection)
    for path, record in collection.manifest.files().items():
        texts = " ".join(c.text for c in collection.manifest.chunks_of(path))
        old_or_new = ("Fact number" in texts) != ("New fact" in texts)
        assert old_or_new, path  # every file fully old or fully new
        assert record.sha256 and record.n_chunks == len(collection.manifest.chunk_ids(path))
    resumed, _ = run(collection, [corpus])
    assert not resumed.interrupted
    assert len(resumed.indexed) == 30 - len(summary.indexed)
    assert all("New fact" in c.text for c in collection.manifest.all_chunks() if "fact" in c.text)
    consistent(collection)


def test_stop_event_stops_a_run(collection, corpus) -> None:
    stop = threading.Event()
    stop.set()
    summary, embedder = run(collection, [corpus], stop=stop)
    assert summary.interrupted and summary.indexed == [] and embedder.embedded == 0


def test_vectors_left_by_a_crash_are_cleaned_up(collection, corpus) -> None:
    run(collection, [corpus])
    # A run that died after writing vectors but before recording them in the manifest:
    collection.manifest.mark_pending_adds(["ghost-0"])
    collection.store.upsert(["ghost-0"], HashingEmbedder().embed(["ghost"]))
    run(collection, [corpus])
    consistent(collection)


def test_file_deleted_mid_run_is_skipped(collection, corpus) -> None:
    found = discover([corpus])
    victim = corpus / "kitchen/bread.txt"
    victim.unlink()
    summary = Indexer(collection, CountingEmbedder).run_discovered(found)
    assert (str(victim), "deleted while indexing") in summary.skipped
    assert len(summary.indexed) == 3
    consistent(collection)


def test_bad_files_are_skipped_and_old_chunks_dropped(collection, corpus) -> None:
    run(collection, [corpus])
    (corpus / "garden/roses.md").write_bytes(b"\xff\xfe broken \x00 bytes")
    (corpus / "empty.txt").write_text("", "utf-8")
    with (corpus / "huge.log").open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)
    summary, _ = run(collection, [corpus])
    reasons = {Path(p).name: r for p, r in summary.skipped}
    assert reasons == {
        "roses.md": "binary file (contains NUL bytes)",
        "empty.txt": "empty file",
        "huge.log": "too large (200 MB > 50 MB limit; --max-file-mb)",
    }
    assert str(corpus / "garden/roses.md") in summary.removed
    consistent(collection)


def test_unreadable_file_is_skipped_with_permission_denied(tmp_path: Path) -> None:
    """A file the indexing user may not read. Root ignores file permissions, so as root (CI
    containers) the real CLI runs in a subprocess without the capabilities that bypass them."""
    corpus = write_corpus(tmp_path / "docs", {"ok.md": "# Fine\n\nReadable text.\n"})
    secret = corpus / "secret.md"
    secret.write_text("# Secret\n\nNot for you.\n", "utf-8")
    secret.chmod(0o000)
    env = {
        **os.environ,
        "CHATAPP_HOME": str(tmp_path / "home"),
        "CHATAPP_RETRIEVAL__EMBEDDER": "hashing",
    }
    command = [sys.executable, "-m", "chatapp", "index", str(corpus), "--json"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {"path": str(secret), "reason": "permission denied"} in summary["skipped"]
    assert summary["indexed"] == [str(corpus / "ok.md")]


@pytest.mark.slow
def test_ctrl_c_stops_the_cli_with_a_summary_and_the_next_run_resumes(tmp_path: Path) -> None:
    """A real SIGINT to ``chatapp index`` while it works: exit 130, a summary that says it
    stopped, a consistent store, and a second run that finishes the rest."""
    import signal
    import sqlite3
    import time

    files = {f"d{i:04}.md": f"# Doc {i}\n\n" + f"word{i} " * 200 for i in range(800)}
    corpus = write_corpus(tmp_path / "big", files)
    home = tmp_path / "home"
    env = {**os.environ, "CHATAPP_HOME": str(home), "CHATAPP_RETRIEVAL__EMBEDDER": "hashing"}
    command = [sys.executable, "-m", "chatapp", "index", str(corpus), "-C", "big", "--json"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=default_sigint)  # fmt: skip
    manifest = home / "data/collections/manifests/big/manifest.sqlite"
    deadline = time.monotonic() + 120
    indexed = 0
    while indexed == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        if manifest.exists():
            try:
                with sqlite3.connect(manifest) as db:
                    indexed = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
            except sqlite3.Error:
                indexed = 0
    assert process.poll() is None, "indexing finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["interrupted"] is True and 0 < len(summary["indexed"]) < 800
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout)
    assert final["interrupted"] is False
    assert len(final["indexed"]) + final["unchanged"] == 800


class SlowEmbedder(HashingEmbedder):
    """The hashing embedder, taking longer per batch than the reader's old one-second wait."""

    def embed(self, texts: list[str]) -> np.ndarray:
        threading.Event().wait(1.3)
        return super().embed(texts)


def test_index_returns_when_the_writer_is_busy_as_the_reader_finishes(
    tmp_path: Path, collection: Collection
) -> None:
    # 256 files fill the reader's queue; two batches of 64 more make the reader's last file
    # take the last free slot just as the writer starts embedding a batch. The end-of-work
    # mark used to be dropped after a second, and the writer then waited forever.
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(256 + 2 * 64):
        (docs / f"note{i:03}.txt").write_text(f"Note {i} about topic {i % 7}.\n", encoding="utf-8")
    outcome: dict = {}
    worker = threading.Thread(
        target=lambda: outcome.update(summary=index_paths(collection, [docs], SlowEmbedder)),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=300)  # a hang guard, not a speed check
    assert not worker.is_alive(), "chatapp index never returned"
    summary = outcome["summary"]
    assert len(summary.indexed) == 384 and not summary.interrupted
    assert collection.manifest.counts() == (384, 384)


def test_keyword_index_from_the_readers_terms_matches_one_rebuilt_from_the_manifest(
    collection, corpus
) -> None:
    from chatapp.retrieval.store.keywords import load_lexical

    run(collection, [corpus])  # builds the keyword index from the terms made while reading
    built = load_lexical(collection)
    shutil.rmtree(collection.bm25_dir)
    rebuilt = load_lexical(collection)  # every chunk tokenized again from the manifest
    assert built.ids == rebuilt.ids and len(built.ids) > 0
    for query in ("tomatoes shade", "bread flour", "roses prune", "watering"):
        assert built.top(query, 5) == rebuilt.top(query, 5)

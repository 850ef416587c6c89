"""The indexer's reader process (reader_process.py), with real Korean pages, real Kiwi, real
chromadb and real signals: it makes exactly the chunks, spaces and keyword terms the reader
thread makes; a worker killed mid-run is replaced by the thread and the run finishes the same;
a stopped run, a Ctrl+C to the whole process group and a killed ``chatapp index`` leave no
worker behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from chatapp.embedding.embedder import HashingEmbedder, RoutedEmbedder
from chatapp.retrieval.ingest.indexing import IndexOptions, index_paths
from chatapp.retrieval.store.collection import Collection, create_or_open
from chatapp.text.terms import TOKENIZER_VERSION
from tests.support.signals import default_sigint

REPO = Path(__file__).resolve().parents[2]
KOREAN_PAGES = REPO / "benchmarks" / "retrieval_eval_ko" / "corpus"
ENGLISH_PAGES = REPO / "benchmarks" / "retrieval_eval" / "corpus" / "cmake-commands"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Eight Korean pages and eight English ones: one mixed folder."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in sorted(KOREAN_PAGES.glob("*.md"))[:8] + sorted(ENGLISH_PAGES.glob("*.rst"))[:8]:
        shutil.copyfile(page, docs / page.name)
    return docs


def routed() -> RoutedEmbedder:
    """Korean and English in two spaces, as ``auto`` does, with the hashing embedder."""
    return RoutedEmbedder({"en": "hashing", "*": "hashing-ko"}, {
        "hashing": HashingEmbedder(), "hashing-ko": HashingEmbedder(128)})  # fmt: skip


def workers(pid: int | None = None) -> list[psutil.Process]:
    """Reader processes under this process (not multiprocessing's resource tracker, which
    stays for the process's life)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def index(name: str, folder: Path, reader_process: bool, on_progress=None):
    coll = create_or_open(name, embedder="hashing", chunk_tokens=80, chunk_overlap=12)
    router = routed()
    summary = index_paths(
        coll, [folder], lambda: router, IndexOptions(reader_process=reader_process), on_progress
    )
    return coll, summary


def contents(coll: Collection) -> list[tuple]:
    terms = dict(coll.manifest.all_terms(TOKENIZER_VERSION))
    return [
        (
            c.path,
            c.ord,
            c.text,
            (c.start_line, c.end_line),
            c.heading,
            c.tokens,
            c.space,
            terms[c.id],
        )
        for c in sorted(coll.manifest.all_chunks(), key=lambda c: (c.path, c.ord))
    ]


def test_the_reader_process_makes_what_the_reader_thread_makes(folder: Path) -> None:
    seen: list[int] = []
    by_process, summary = index(
        "by-process", folder, True, on_progress=lambda _: seen.append(len(workers()))
    )
    by_thread, _ = index("by-thread", folder, False)
    assert max(seen) == 1, "the run did not use a reader process"
    assert len(summary.indexed) == 16 and not summary.interrupted
    made = contents(by_process)
    assert made == contents(by_thread)
    assert {row[6] for row in made} == {"hashing", "hashing-ko"}  # both languages routed
    korean_terms = [t for row in made if row[6] == "hashing-ko" for t in row[7]]
    assert "컴포넌트" in korean_terms  # Kiwi ran in the worker
    assert not workers()


def test_a_killed_reader_process_is_replaced_by_the_thread(folder: Path) -> None:
    killed: list[int] = []

    def kill_worker(_progress) -> None:
        for child in workers():
            if not killed:
                killed.append(child.pid)
                child.send_signal(signal.SIGKILL)

    survived, summary = index("survived", folder, True, on_progress=kill_worker)
    assert killed, "no reader process to kill"
    assert len(summary.indexed) == 16 and not summary.interrupted
    by_thread, _ = index("by-thread", folder, False)
    assert contents(survived) == contents(by_thread)
    assert not workers()


def test_a_stopped_run_leaves_no_reader_process(folder: Path) -> None:
    import threading

    stop = threading.Event()
    coll = create_or_open("stopped", embedder="hashing", chunk_tokens=80, chunk_overlap=12)
    router = routed()
    summary = index_paths(coll, [folder], lambda: router, IndexOptions(reader_process=True),
                          on_progress=lambda _: stop.set(), stop=stop)  # fmt: skip
    assert summary.interrupted
    assert not workers()
    again = index_paths(coll, [folder], lambda: router, IndexOptions(reader_process=True))
    assert len(again.indexed) + again.unchanged == 16 and not again.interrupted


class UntravelledHashing(HashingEmbedder):
    """A hashing embedder whose tokenizer cannot travel to a worker (as a sentence-transformers
    model without a fast tokenizer)."""

    def token_counter(self):
        return None


def test_an_early_worker_is_closed_when_the_tokenizers_cannot_travel(folder: Path) -> None:
    """The worker starts before the models load; when their tokenizers turn out not to travel,
    it is ended and the thread reads every file, as before."""
    seen: list[int] = []
    coll = create_or_open("untravelled", embedder="hashing", chunk_tokens=80, chunk_overlap=12)
    router = RoutedEmbedder({"en": "hashing", "*": "hashing-ko"}, {
        "hashing": HashingEmbedder(), "hashing-ko": UntravelledHashing(128)})  # fmt: skip
    summary = index_paths(coll, [folder], lambda: router, IndexOptions(reader_process=True),
                          on_progress=lambda _: seen.append(len(workers())))  # fmt: skip
    assert len(summary.indexed) == 16 and not summary.interrupted
    assert seen and max(seen) == 0, "a worker was still running while files were written"
    by_thread, _ = index("by-thread", folder, False)
    assert contents(coll) == contents(by_thread)
    assert not workers()


def test_kiwi_is_loaded_ahead_only_for_a_folder_that_shows_hangul(folder: Path) -> None:
    from chatapp.retrieval.ingest.discovery import FoundFile
    from chatapp.retrieval.ingest.reader_process import shows_hangul

    def found(paths: list[Path]) -> list[FoundFile]:
        return [FoundFile(p, p.stat().st_size, p.stat().st_mtime_ns) for p in paths]

    korean = sorted(folder.glob("*.md"))
    english = sorted(folder.glob("*.rst"))
    assert shows_hangul(found(english + korean[:1]))
    assert not shows_hangul(found(english))
    assert not shows_hangul(found(english[:1] + korean), files=1)  # only the first files
    assert not shows_hangul([FoundFile(folder / "gone.md", 10, 0)])  # unreadable: none shown


def test_with_the_models_loaded_the_first_files_come_before_their_keyword_terms(
    folder: Path,
) -> None:
    """Kiwi's load then follows the first files, whose terms come after them (the writer
    embeds meanwhile); the terms are the ones the thread makes, and the files after them
    come with theirs."""
    import threading

    from chatapp.retrieval.ingest.discovery import discover
    from chatapp.retrieval.ingest.reader import FileReader, settle_terms
    from chatapp.retrieval.ingest.reader_process import ReaderProcess, early_files, process_router

    work = discover([folder]).files
    reader = FileReader(routed(), IndexOptions(), 80, 12, set(), threading.Event())
    router = process_router(reader.router)
    assert router is not None
    made: list = []

    def read() -> None:  # on a thread of its own, as the indexer's reader (SIGINT masks)
        english = ReaderProcess.start([i for i in work if i.path.suffix == ".rst"], True)
        assert not english.defer_terms  # no Hangul: no Kiwi to wait for
        english.close()
        process = ReaderProcess.start(work, models_loaded=True)
        assert process.defer_terms
        made.extend(process.prepared(reader, router, work, {}))

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(timeout=120)
    assert len(made) == len(work)
    early = sum(1 for p in made if p.terms_later is not None)
    assert early > 1 and early < len(work)  # the first batch here, the next files there
    assert early >= early_files(work)
    assert all(p.terms_later is not None and not p.terms for p in made[:early])
    assert all(p.terms_later is None and p.terms for p in made[early:])
    assert all(p.terms_later.done() for p in made[:early])  # before the worker closed
    for prepared in made:
        assert settle_terms(prepared, threading.Event())
    assert [p.terms for p in made] == [reader.prepare(i, None).terms for i in work]
    assert not workers()


def _cli_with_worker(tmp_path: Path, **popen) -> tuple[subprocess.Popen, psutil.Process]:
    """``chatapp index`` of a folder large enough for a reader process, once its worker runs."""
    files = {f"d{i:04}.md": f"# Doc {i}\n\n" + f"word{i} " * 200 for i in range(2000)}
    big = tmp_path / "big"
    big.mkdir()
    for name, text in files.items():
        (big / name).write_text(text, encoding="utf-8")
    env = {**os.environ, "CHATAPP_HOME": str(tmp_path / "home"),
           "CHATAPP_RETRIEVAL__EMBEDDER": "hashing"}  # fmt: skip
    command = [sys.executable, "-m", "chatapp", "index", str(big), "-C", "big", "--json"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, **popen)  # fmt: skip
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        children = workers(process.pid)
        if children:
            return process, children[0]
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no reader process appeared: {process.communicate()[1][-500:]}")


def _gone(worker: psutil.Process, within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s  # a hang guard, not a speed check
    while time.monotonic() < deadline:
        try:
            if worker.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_worker_and_run_without_a_traceback(
    tmp_path: Path,
) -> None:
    process, worker = _cli_with_worker(tmp_path, preexec_fn=default_sigint, start_new_session=True)
    time.sleep(0.3)  # the worker is starting or working: both must take Ctrl+C quietly
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl+C does: every process
    out, err = process.communicate(timeout=60)
    # 130, or ended by the SIGINT itself: what a shell reports as 130 either way. Under heavy
    # CPU load ~1 run in 20 ends by the signal after printing its summary (cause not found).
    assert process.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert json.loads(out)["interrupted"] is True
    assert _gone(worker)


@pytest.mark.slow
def test_a_killed_chatapp_index_leaves_no_reader_process(tmp_path: Path) -> None:
    process, worker = _cli_with_worker(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert _gone(worker), "the reader process outlived chatapp index"


def test_with_the_real_embedders_the_reader_process_gives_the_same_vectors(
    tmp_path: Path,
) -> None:
    """``auto`` (MiniLM and USE multilingual): chunk sizes from the tokenizers that travel to
    the worker, and USE pieces made there, give the vectors of the reader thread exactly."""
    import numpy as np

    from chatapp.embedding.embedder import create_embedder

    docs = tmp_path / "docs"
    docs.mkdir()
    for page in sorted(KOREAN_PAGES.glob("*.md"))[:2] + sorted(ENGLISH_PAGES.glob("*.rst"))[:2]:
        shutil.copyfile(page, docs / page.name)
    router = create_embedder("auto")
    made = {}
    for mode in (True, False):
        coll = create_or_open(f"real-{mode}", embedder="auto", chunk_tokens=120, chunk_overlap=16)
        index_paths(coll, [docs], lambda: router, IndexOptions(reader_process=mode))
        chunks = sorted(coll.manifest.all_chunks(), key=lambda c: (c.path, c.ord))
        vectors = {}
        for space in coll.space_counts():
            vectors.update(coll.store_for(space).embeddings([c.id for c in chunks]))
        made[mode] = ([(c.path, c.text, c.tokens, c.space) for c in chunks],
                      [vectors[c.id] for c in chunks])  # fmt: skip
    assert made[True][0] == made[False][0]
    assert {row[3] for row in made[True][0]} == {"bundled", "use-multilingual"}
    for by_process, by_thread in zip(made[True][1], made[False][1], strict=True):
        assert np.array_equal(by_process, by_thread)
    # …and they are the vectors ``embed`` makes of the same texts, tokens and all.
    from chatapp.retrieval.ingest.reader import embed_text

    chunks = sorted(coll.manifest.all_chunks(), key=lambda c: (c.path, c.ord))
    for space in ("bundled", "use-multilingual"):
        rows = [i for i, c in enumerate(chunks) if c.space == space]
        direct = router.get(space).embed([embed_text(chunks[i].path, chunks[i]) for i in rows])
        stored = np.stack([made[True][1][i] for i in rows])
        assert np.allclose(direct, stored, atol=1e-5)

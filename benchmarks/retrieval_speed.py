"""Retrieval speed: embedders side by side, and indexing of the 1 MB Korean and 16 MB English
folders with the default pipeline (``auto``), the Korean one again with one core kept busy by
another process (as a reply being generated beside the indexer does), re-indexing (unchanged,
one file changed) and query latency at ≥ 20k chunks, with CPU seconds and the load average next
to wall-clock figures.

Run by benchmarks/retrieval.py (``make bench``); alone: ``python benchmarks/retrieval_speed.py``
(``--quick`` skips the 16 MB folder, ``--english-only`` the 1 MB Korean one; writes
benchmarks/results/retrieval-folders.json). The machine is shared, so every ratio is measured side by
side in one run and embedder speeds alternate between rounds (medians reported, with the spread).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import chatapp  # noqa: E402,F401  (its BLAS thread default must come before numpy's)

os.environ.setdefault("CHATAPP_HOME", tempfile.mkdtemp(prefix="chatapp-bench-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from benchmarks.retrieval_corpora import english_folder, korean_folder  # noqa: E402
from chatapp.embedding.embedder import (  # noqa: E402
    RoutedEmbedder,
    SentenceTransformerEmbedder,
    create_embedder,
)
from chatapp.embedding.multilingual import UniversalSentenceEncoder  # noqa: E402
from chatapp.retrieval.ingest.indexing import embed_text, index_paths  # noqa: E402
from chatapp.retrieval.ingest.summary import WRITE_BATCH_MAX  # noqa: E402
from chatapp.retrieval.ingest.writer import embedding_calls  # noqa: E402
from chatapp.retrieval.search.hybrid import Searcher  # noqa: E402
from chatapp.retrieval.store.collection import Collection, create_or_open  # noqa: E402

SAMPLE = 256
ROUNDS = 3
LATENCY_QUERIES = 200
ENGLISH_EMBED_EVERY = 4
"""The 16 MB folder's embed-only time is measured on every 4th chunk (and scaled): all of them
would add another ~5 minutes to the run."""


def _rate(seconds: list[float], n: int, nbytes: int) -> dict:
    best, median = min(seconds), statistics.median(seconds)
    return {
        "chunks_per_s": round(n / median, 1),
        "kb_per_s": round(nbytes / 1024 / median, 1),
        "chunks_per_s_range": [round(n / max(seconds), 1), round(n / best, 1)],
    }


def embedder_speeds(texts: dict[str, list[str]]) -> dict:
    """chunks/s and KB/s per embedder on Korean and English chunks (the same chunks for every
    embedder), MiniLM with fp32 and with bf16 weights, rounds alternating."""
    minilm = create_embedder("bundled")
    use = create_embedder("use-multilingual")
    assert isinstance(minilm, SentenceTransformerEmbedder)
    assert isinstance(use, UniversalSentenceEncoder)
    native, use_native = minilm.precision, use.precision
    configs: dict[str, tuple[Any, str]] = {
        "minilm-fp32": (minilm, "fp32"),
        "use-multilingual-numpy": (use, "fp32"),
    }
    if native == "bf16":
        configs["minilm-bf16"] = (minilm, "bf16")
    if use_native == "bf16":
        configs["use-multilingual-bf16"] = (use, "bf16")
    out: dict = {"minilm_precision_chosen": native, "use_precision_chosen": use_native}
    for language, sample in texts.items():
        nbytes = sum(len(t.encode()) for t in sample)
        times: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(ROUNDS):
            for name, (embedder, precision) in configs.items():
                embedder.precision = precision
                embedder.embed(sample[:8])
                began = time.perf_counter()
                for start in range(0, len(sample), 64):
                    embedder.embed(sample[start : start + 64])
                times[name].append(time.perf_counter() - began)
        out[language] = {name: _rate(t, len(sample), nbytes) for name, t in times.items()}
        out[language]["chunks"] = len(sample)
        out[language]["avg_bytes"] = round(nbytes / len(sample))
        for name, embedder, chosen in (("", minilm, native), ("use_", use, use_native)):
            if chosen == "bf16":
                embedder.precision = "fp32"
                exact = embedder.embed(sample)
                embedder.precision = "bf16"
                fast = embedder.embed(sample)
                cosine = np.sum(exact * fast, axis=1)
                out[language][f"{name}bf16_cosine_min"] = round(float(cosine.min()), 6)
    minilm.precision, use.precision = native, use_native
    return out


def embed_only_s(collection: Collection, router: RoutedEmbedder, every: int = 1) -> float:
    """Embedding the collection's chunks alone, each in its space, in the indexer's calls (its
    largest batches, each embedded in like-length calls); with ``every`` > 1, every
    ``every``-th chunk, and the time scaled by ``every`` (an estimate for a folder whose chunks
    are alike, as the generated English one's are)."""
    chunks = collection.manifest.all_chunks()[::every]
    primary = collection.primary_space
    began, cpu = time.perf_counter(), time.process_time()
    for space in router.spaces:
        mine = [c for c in chunks if (c.space or primary) == space]
        embedder = router.get(space)
        for first in range(0, len(mine), WRITE_BATCH_MAX):
            batch = mine[first : first + WRITE_BATCH_MAX]
            for call in embedding_calls([c.tokens for c in batch]):
                embedder.embed([embed_text(batch[i].path, batch[i]) for i in call])
    LAST_EMBED_CPU_S[0] = (time.process_time() - cpu) * every
    return (time.perf_counter() - began) * every


LAST_EMBED_CPU_S = [0.0]
"""CPU seconds of the last ``embed_only_s``."""


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """One core kept busy by another process (a single-threaded spin) while the block runs; the
    spinner also stops when this process dies."""
    spin = "import os, sys\nwhile os.getppid() == int(sys.argv[1]):\n    sum(range(100_000))"
    spinner = subprocess.Popen([sys.executable, "-c", spin, str(os.getpid())])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def index_folder(name: str, folder: Path, nbytes: int, *, embed_only: int) -> dict:
    """Index a folder with the default pipeline into a new collection; wall time includes the
    keyword index build. ``embed_only``: also time embedding the same chunks alone (0: no; 1:
    all of them; n: every n-th, scaled)."""
    router = create_embedder("auto")
    assert isinstance(router, RoutedEmbedder)
    for space in router.spaces:  # loading models is not indexing
        router.get(space).embed(["warm up"])
    coll = create_or_open(name, embedder="auto", chunk_tokens=200, chunk_overlap=32)
    load_before = load_average()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    began, cpu = time.perf_counter(), time.process_time()
    summary = index_paths(coll, [folder], lambda: router)
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reader_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    cpu += reader_cpu  # the reader process's, when the run had one
    chunks = coll.manifest.counts()[1]
    result = {
        "files": summary.files_total,
        "mb": round(nbytes / 1024 / 1024, 2),
        "chunks": chunks,
        "chunks_per_space": coll.space_counts(),
        "index_s": round(wall, 1),
        "index_cpu_s": round(cpu, 1),
        "reader_process_cpu_s": round(reader_cpu, 1),
        "load_average": [load_before, load_average()],
        "chunks_per_s": round(chunks / wall, 1),
        "kb_per_s": round(nbytes / 1024 / wall, 1),
    }
    if embed_only:
        alone = embed_only_s(coll, router, embed_only)
        result["embed_only_s"] = round(alone, 1)
        if embed_only > 1:
            result["embed_only_sampled_every"] = embed_only
        result["embed_only_cpu_s"] = round(LAST_EMBED_CPU_S[0], 1)
        result["ingest_over_embed"] = round(alone / wall, 3)
        result["ingest_over_embed_cpu"] = round(LAST_EMBED_CPU_S[0] / cpu, 3)
    result["collection"] = coll
    result["router"] = router
    return result


def query_latency(coll: Collection, router: RoutedEmbedder, queries: list[str]) -> dict:
    searcher = Searcher(coll, router)
    searcher.search("warm up", 5, calibrated=True)
    times, cpu = [], []
    load_before = load_average()
    for query in (queries * (LATENCY_QUERIES // max(1, len(queries)) + 1))[:LATENCY_QUERIES]:
        began, cpu_began = time.perf_counter(), time.process_time()
        searcher.search(query, 5, calibrated=True)
        times.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - cpu_began) * 1000)
    return {
        "queries": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
        "cpu_p50_ms": round(statistics.median(cpu), 1),
        "cpu_p95_ms": round(float(np.percentile(cpu, 95)), 1),
        "load_average": [load_before, load_average()],
    }


def folders(
    english_queries: list[str], korean_queries: list[str], quick: bool, korean: bool = True
) -> dict:
    out: dict = {}
    work = Path(tempfile.mkdtemp(prefix="chatapp-folders-"))
    try:
        if korean:
            files, nbytes = korean_folder(work / "ko", 1.0)
            ko = index_folder("speed-ko-1mb", work / "ko", nbytes, embed_only=1)
            ko["query_latency_korean"] = query_latency(
                ko["collection"], ko["router"], korean_queries
            )
            out["korean_1mb"] = ko
            # The same folder again with one core taken by another busy program (what a
            # reply being generated beside the indexer does).
            with busy_core():
                busy = index_folder("speed-ko-1mb-busy", work / "ko", nbytes, embed_only=0)
            out["korean_1mb_one_core_busy"] = busy
        if not quick:
            files, nbytes = english_folder(work / "en", 16.0)
            en = index_folder("speed-en-16mb", work / "en", nbytes, embed_only=ENGLISH_EMBED_EVERY)
            began = time.perf_counter()
            again = index_paths(en["collection"], [work / "en"], lambda: en["router"])
            en["reindex_unchanged_s"] = round(time.perf_counter() - began, 3)
            en["reindex_over_first"] = round(en["reindex_unchanged_s"] / en["index_s"], 4)
            assert not again.indexed
            # One file changed: only its chunks are embedded and analysed again (the others'
            # keyword terms are stored with them); the keyword index is rebuilt from them.
            pages = sorted((work / "en").glob("*.md"))
            changed = pages[len(pages) // 2]
            changed.write_text(changed.read_text(encoding="utf-8") + "\n\nOne more line.\n")
            began, cpu = time.perf_counter(), time.process_time()
            again = index_paths(en["collection"], [work / "en"], lambda: en["router"])
            en["reindex_one_changed_s"] = round(time.perf_counter() - began, 2)
            en["reindex_one_changed_cpu_s"] = round(time.process_time() - cpu, 2)
            assert len(again.indexed) == 1
            en["query_latency_english"] = query_latency(
                en["collection"], en["router"], english_queries
            )
            en["query_latency_korean"] = query_latency(
                en["collection"], en["router"], korean_queries
            )
            out["english_16mb"] = en
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for value in out.values():
        value.pop("router", None)
        coll = value.pop("collection", None)
        if coll is not None:
            coll.close()
    return out


if __name__ == "__main__":
    import json

    from benchmarks.retrieval import load_set

    en_q, _ = load_set("retrieval_eval")
    ko_q, _ = load_set("retrieval_eval_ko")
    result = folders(
        [q["question"] for q in en_q],
        [q["question"] for q in ko_q],
        "--quick" in sys.argv,
        korean="--english-only" not in sys.argv,
    )
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    out = ROOT / "benchmarks" / "results" / "retrieval-folders.json"
    # A run of one folder (--quick, --english-only) keeps the other folder's last figures.
    saved = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    saved.update(result)
    out.write_text(json.dumps(saved, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

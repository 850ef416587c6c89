"""Retrieval benchmark: quality on the shipped eval set and speed, side by side in one run.

Quality (benchmarks/retrieval_eval: CMake's command reference, 134 files, 50 questions each with
the file that answers it, 10 questions it cannot answer):
  recall@5 (a top-5 chunk comes from the answering file) and MRR@10 for dense, BM25 and hybrid,
  with the default embedder (bundled MiniLM) and the fast one (static, distilled from it); a
  plain baseline (MiniLM over blank-line paragraphs, dense only); refusal rate on the
  unanswerable questions (no chunk passes the relevance threshold → no model call) and false
  refusals on the answerable ones; with the bundled SmolLM2, answer accuracy with and without
  retrieval (accuracy = the reply contains the question's key fact string, case-insensitive).
Speed:
  ingest chunks/s end-to-end ÷ embed-only chunks/s on the same chunks (MiniLM); fast-mode
  indexing speed-up and its recall; re-index of an unchanged ~10 MB generated corpus ÷ its first
  index (fast mode); query latency p50/p95 including query embedding at ≥ 20k chunks (fast
  mode) and MiniLM query-embedding latency; peak RSS.

``--quick`` skips the SmolLM2 answers and the baseline. Prints a table and writes
benchmarks/results/retrieval.json.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHATAPP_HOME", tempfile.mkdtemp(prefix="chatapp-bench-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402

from chatapp.config import load_settings  # noqa: E402
from chatapp.retrieval.collection import create_or_open  # noqa: E402
from chatapp.retrieval.embedder import create_embedder  # noqa: E402
from chatapp.retrieval.indexing import IndexOptions, embed_text, index_paths  # noqa: E402
from chatapp.retrieval.search import Searcher, relevance_threshold  # noqa: E402

QUICK = "--quick" in sys.argv
EVAL = ROOT / "benchmarks" / "retrieval_eval"
CORPUS = EVAL / "corpus"
OPTIONS = IndexOptions(exclude=["NOTICE"])
SYNTHETIC_MB = 10
LATENCY_QUERIES = 200


def load_questions() -> tuple[list[dict], list[dict]]:
    read = lambda name: [json.loads(x) for x in (EVAL / name).read_text().splitlines() if x]  # noqa: E731
    return read("questions.jsonl"), read("unanswerable.jsonl")


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ranks(files: list[str], gold: str) -> tuple[bool, float]:
    """(hit in the top 5 chunks, reciprocal rank of the first chunk from the gold file)."""
    rank = next((i for i, f in enumerate(files[:10], start=1) if f == gold), None)
    return bool(rank and rank <= 5), 1.0 / rank if rank else 0.0


def quality(searcher: Searcher, questions: list[dict]) -> dict:
    out = {}
    for mode in ("dense", "bm25", "hybrid"):
        hits, rr = [], []
        for q in questions:
            found = [
                os.path.basename(h.path) for h in searcher.search(q["question"], 10, mode=mode)
            ]
            hit, reciprocal = ranks(found, q["file"])
            hits.append(hit)
            rr.append(reciprocal)
        out[mode] = {
            "recall@5": round(float(np.mean(hits)), 3),
            "mrr@10": round(float(np.mean(rr)), 3),
        }
    return out


def refusals(searcher: Searcher, questions: list[dict], threshold: float) -> float:
    refused = [not searcher.search(q["question"], 5, min_score=threshold) for q in questions]
    return round(float(np.mean(refused)), 3)


def embed_only_s(embedder, texts: list[str]) -> float:
    began = time.perf_counter()
    for start in range(0, len(texts), 64):  # the indexer's batch size, the same chunks
        embedder.embed(texts[start : start + 64])
    return time.perf_counter() - began


def index_eval(setting: str, rounds: int) -> dict:
    """Index the eval corpus, then embed the same chunks alone; ``rounds`` alternations (a
    fresh collection each), medians compared, so load from other processes hits both sides."""
    embedder = create_embedder(setting)  # loaded before timing: model load is not ingest
    embedder.embed(["warm up"] * 8)
    ingest, embed_only = [], []
    coll = None
    for round_ in range(rounds):
        if coll is not None:
            coll.close()
        name = f"eval-{setting}" + (f"-{round_}" if round_ else "")
        coll = create_or_open(name, embedder=setting, chunk_tokens=200, chunk_overlap=32)
        summary = index_paths(coll, [CORPUS], lambda: embedder, OPTIONS)
        ingest.append(summary.elapsed_s)
        chunks = coll.manifest.all_chunks()
        embed_only.append(embed_only_s(embedder, [embed_text(c.path, c) for c in chunks]))
    assert coll is not None
    n = coll.manifest.counts()[1]
    ingest_s, embed_s = statistics.median(ingest), statistics.median(embed_only)
    return {
        "collection": coll,
        "embedder": embedder,
        "chunks": n,
        "index_s": round(ingest_s, 2),
        "ingest_rounds_s": [round(x, 2) for x in ingest],
        "embed_only_rounds_s": [round(x, 2) for x in embed_only],
        "ingest_chunks_per_s": round(n / ingest_s, 1),
        "embed_only_chunks_per_s": round(n / embed_s, 1),
        "ingest_over_embed": round(embed_s / ingest_s, 3),
    }


def paragraph_baseline(minilm, questions: list[dict]) -> dict:
    """MiniLM over blank-line paragraphs, dense only, no file name or heading context."""
    paragraphs, owners = [], []
    for path in sorted((CORPUS / "cmake-commands").iterdir()):
        if path.name == "NOTICE":
            continue
        for para in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            if para.strip():
                paragraphs.append(para.strip())
                owners.append(path.name)
    began = time.perf_counter()
    matrix = minilm.embed(paragraphs)
    embed_s = time.perf_counter() - began
    hits, rr = [], []
    for q in questions:
        order = np.argsort(-(matrix @ minilm.embed([q["question"]])[0]))[:10]
        hit, reciprocal = ranks([owners[i] for i in order], q["file"])
        hits.append(hit)
        rr.append(reciprocal)
    return {
        "chunks": len(paragraphs),
        "embed_s": round(embed_s, 1),
        "recall@5": round(float(np.mean(hits)), 3),
        "mrr@10": round(float(np.mean(rr)), 3),
    }


def answer_accuracy(default: dict, questions: list[dict], unanswerable: list[dict]) -> dict:
    from chatapp.domain import ChatMessage, GenerationParams, TokenEvent
    from chatapp.engine.factory import create_backend
    from chatapp.retrieval.grounding import prepare_grounded_turn

    settings = load_settings({"generation": {"max_tokens": 96}})
    backend = create_backend(settings)
    params = GenerationParams(temperature=0.0, seed=0, max_tokens=96)
    system = ChatMessage("system", settings.chat.system_prompt)
    searcher = Searcher(default["collection"], default["embedder"])

    def reply(text: str) -> str:
        events = backend.stream_chat([system, ChatMessage("user", text)], params)
        return "".join(e.text for e in events if isinstance(e, TokenEvent))

    with_rag, without, refused_answerable = [], [], 0
    for q in questions:
        fact = q["answer"].lower()
        without.append(fact in reply(q["question"]).lower())
        turn = prepare_grounded_turn(
            q["question"], default["collection"], settings, backend, searcher=searcher
        )
        if turn.grounded:
            with_rag.append(fact in reply(turn.model_text or "").lower())
        else:
            refused_answerable += 1
            with_rag.append(False)
    refused = sum(
        not prepare_grounded_turn(
            q["question"], default["collection"], settings, backend, searcher=searcher
        ).grounded
        for q in unanswerable
    )
    backend.close()
    return {
        "accuracy_without_retrieval": round(float(np.mean(without)), 3),
        "accuracy_with_retrieval": round(float(np.mean(with_rag)), 3),
        "refusal_rate_unanswerable": round(refused / len(unanswerable), 3),
        "refused_answerable": refused_answerable,
    }


def synthetic_corpus(folder: Path, megabytes: int) -> int:
    """Markdown files of CMake-flavoured prose, deterministic; returns total bytes."""
    words = re.findall(r"[A-Za-z_]{3,}", " ".join(p.read_text() for p in CORPUS.rglob("*.rst")))
    rng = random.Random(0)
    total, n = 0, 0
    while total < megabytes * 1024 * 1024:
        sections = []
        for s in range(8):
            paras = [
                " ".join(rng.choices(words, k=rng.randint(40, 110))).capitalize() + "."
                for _ in range(rng.randint(3, 6))
            ]
            sections.append(f"## Section {s} {rng.choice(words)}\n\n" + "\n\n".join(paras))
        text = f"# Generated document {n}\n\n" + "\n\n".join(sections) + "\n"
        (folder / f"doc{n:04}.md").write_text(text, encoding="utf-8")
        total += len(text.encode())
        n += 1
    return total


def scale(questions: list[dict]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="chatapp-corpus-"))
    size = synthetic_corpus(folder, SYNTHETIC_MB)
    fast = create_embedder("fast")
    coll = create_or_open("scale", embedder="fast", chunk_tokens=96, chunk_overlap=16)
    first = index_paths(coll, [folder], lambda: fast)
    again = index_paths(coll, [folder], lambda: fast)
    searcher = Searcher(coll, fast)
    searcher.search("warm up", 5)
    queries = [q["question"] for q in questions] * (LATENCY_QUERIES // len(questions) + 1)
    latencies = []
    threshold = relevance_threshold(load_settings(), "fast")
    for query in queries[:LATENCY_QUERIES]:
        began = time.perf_counter()
        searcher.search(query, 5, min_score=threshold)
        latencies.append((time.perf_counter() - began) * 1000)
    chunks = coll.manifest.counts()[1]
    coll.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "corpus_mb": round(size / 1024 / 1024, 1),
        "files": first.files_total,
        "chunks": chunks,
        "first_index_s": round(first.elapsed_s, 2),
        "reindex_unchanged_s": round(again.elapsed_s, 3),
        "reindex_over_first": round(again.elapsed_s / first.elapsed_s, 4),
        "query_p50_ms": round(statistics.median(latencies), 1),
        "query_p95_ms": round(float(np.percentile(latencies, 95)), 1),
    }


def minilm_query_latency(embedder, questions: list[dict]) -> float:
    embedder.embed(["warm up"])
    times = []
    for q in questions:
        began = time.perf_counter()
        embedder.embed([q["question"]])
        times.append((time.perf_counter() - began) * 1000)
    return round(float(np.percentile(times, 95)), 1)


def main() -> dict:
    questions, unanswerable = load_questions()
    settings = load_settings()
    began = time.perf_counter()
    create_embedder("fast")  # first use distils the static model once (cached afterwards)
    distil_s = round(time.perf_counter() - began, 1)
    results: dict = {"fast_model_first_load_s": distil_s}
    runs = {}
    for setting in ("bundled", "fast"):
        run = index_eval(setting, rounds=1 if QUICK or setting == "fast" else 2)
        searcher = Searcher(run["collection"], run["embedder"])
        threshold = relevance_threshold(settings, setting)
        run["quality"] = quality(searcher, questions)
        run["threshold"] = threshold
        run["refusal_rate_unanswerable"] = refusals(searcher, unanswerable, threshold)
        run["false_refusal_rate_answerable"] = refusals(searcher, questions, threshold)
        runs[setting] = run
    for setting, run in runs.items():
        results[setting] = {k: v for k, v in run.items() if k not in ("collection", "embedder")}
    results["fast_index_speedup"] = round(runs["bundled"]["index_s"] / runs["fast"]["index_s"], 1)
    results["fast_hybrid_recall_gap_points"] = round(
        100
        * (
            runs["bundled"]["quality"]["hybrid"]["recall@5"]
            - runs["fast"]["quality"]["hybrid"]["recall@5"]
        ),
        1,
    )
    results["minilm_query_embed_p95_ms"] = minilm_query_latency(
        runs["bundled"]["embedder"], questions
    )
    results["scale"] = scale(questions)
    results["peak_rss_mib_retrieval"] = peak_rss_mib()
    if not QUICK:
        results["baseline_paragraph_minilm"] = paragraph_baseline(
            runs["bundled"]["embedder"], questions
        )
        results["answers"] = answer_accuracy(runs["bundled"], questions, unanswerable)
        results["peak_rss_mib_with_chat_model"] = peak_rss_mib()
    report(results)
    out = ROOT / "benchmarks" / "results" / ("retrieval-quick.json" if QUICK else "retrieval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def report(r: dict) -> None:
    rows = []
    for setting in ("bundled", "fast"):
        q = r[setting]["quality"]
        for mode in ("dense", "bm25", "hybrid"):
            rows.append(
                (
                    f"{setting} {mode}: recall@5 / MRR@10",
                    f"{q[mode]['recall@5']} / {q[mode]['mrr@10']}",
                )
            )
        rows.append(
            (
                f"{setting}: refusals unanswerable / answerable",
                f"{r[setting]['refusal_rate_unanswerable']} / {r[setting]['false_refusal_rate_answerable']}",
            )
        )
    if "baseline_paragraph_minilm" in r:
        b = r["baseline_paragraph_minilm"]
        rows.append(
            ("baseline paragraphs+MiniLM: recall@5 / MRR@10", f"{b['recall@5']} / {b['mrr@10']}")
        )
    if "answers" in r:
        a = r["answers"]
        rows.append(
            (
                "SmolLM2 accuracy without / with retrieval",
                f"{a['accuracy_without_retrieval']} / {a['accuracy_with_retrieval']}",
            )
        )
    d = r["bundled"]
    rows += [
        (
            "ingest ÷ embed-only (MiniLM, target ≥ 0.85)",
            f"{d['ingest_over_embed']} ({d['ingest_chunks_per_s']} vs {d['embed_only_chunks_per_s']} chunks/s)",
        ),
        ("fast-mode index speed-up (target ≥ 5×)", f"{r['fast_index_speedup']}×"),
        ("fast hybrid recall@5 gap (target ≤ 3 points)", f"{r['fast_hybrid_recall_gap_points']}"),
        (
            "re-index unchanged ÷ first (target ≤ 0.03)",
            f"{r['scale']['reindex_over_first']} ({r['scale']['corpus_mb']} MB, {r['scale']['files']} files)",
        ),
        (
            f"query p95 at {r['scale']['chunks']} chunks, fast (target ≤ 50 ms)",
            f"{r['scale']['query_p95_ms']} ms",
        ),
        ("MiniLM query embedding p95", f"{r['minilm_query_embed_p95_ms']} ms"),
        ("peak RSS (MiB)", f"{r.get('peak_rss_mib_with_chat_model', r['peak_rss_mib_retrieval'])}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

"""Retrieval benchmark: quality on the shipped English and Korean eval sets and speed, side by
side in one run.

Quality — benchmarks/retrieval_eval (English: CMake's command reference, 134 files, 50 questions
with the file that answers each, 10 it cannot answer) and benchmarks/retrieval_eval_ko (Korean:
the Korean React docs, 52 pages, 67 questions with the page(s) that answer each, 14 it cannot
answer): recall@5 (a top-5 chunk comes from an answering file) and MRR@10 for dense, BM25 and
hybrid, per embedder setting — ``auto`` (the default: MiniLM for Latin-script chunks, USE
multilingual for Korean ones), ``bundled`` (MiniLM for everything, the old default),
``use-multilingual`` and ``fast``; refusals (no chunk passes the calibrated threshold → no model
call) on the unanswerable questions and false refusals on the answerable ones; with the bundled
SmolLM2 through the session, English answer accuracy with and without retrieval (the reply
contains the question's key fact).
Speed (retrieval_speed.py) — embedders side by side on the same Korean and English chunks
(chunks/s, KB/s; MiniLM with fp32 and bf16 weights, with the cosine between them); ingest ÷
embed-only for the default pipeline; the 1 MB Korean and 16 MB English folders
(retrieval_corpora.py) indexed with the default pipeline; re-index of the unchanged 16 MB
folder; query p50/p95 including query embedding at ≥ 20k chunks; fast-mode indexing speed-up.

Dev protocol (retrieval_protocol.py) — the refusal bars and fusion weights, each fitted on one
eval set and reported on the others (also the Korean Rust book, retrieval_eval_ko_rust, and a
small personal-notes folder, retrieval_eval_notes, which nothing is fitted on).

``--quick`` skips the SmolLM2 answers and the 16 MB folder; ``--quality-only`` runs only the
default pipeline's quality and the dev protocol (no speed, no other embedders). Prints a table
and writes benchmarks/results/retrieval.json (``retrieval-quick.json`` with --quick,
``retrieval-quality.json`` with --quality-only).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import chatapp  # noqa: E402,F401  (its BLAS thread default must come before numpy's)

os.environ.setdefault("CHATAPP_HOME", tempfile.mkdtemp(prefix="chatapp-bench-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402

from benchmarks import retrieval_protocol, retrieval_speed  # noqa: E402
from chatapp.config import load_settings  # noqa: E402
from chatapp.embedding.embedder import RoutedEmbedder, create_embedder  # noqa: E402
from chatapp.retrieval.ingest.indexing import IndexOptions, embed_text, index_paths  # noqa: E402
from chatapp.retrieval.search.hybrid import Searcher  # noqa: E402
from chatapp.retrieval.store.collection import create_or_open  # noqa: E402

QUICK = "--quick" in sys.argv
QUALITY_ONLY = "--quality-only" in sys.argv
BENCH = ROOT / "benchmarks"
SETS = {
    "english": ("retrieval_eval", ["auto", "fast", "use-multilingual"]),
    "korean": ("retrieval_eval_ko", ["auto", "bundled", "use-multilingual"]),
}
OPTIONS = IndexOptions(exclude=["NOTICE", "LICENSE*", "README*"])


def load_set(name: str) -> tuple[list[dict], list[dict]]:
    def read(file: str) -> list[dict]:
        lines = (BENCH / name / file).read_text(encoding="utf-8").splitlines()
        return [json.loads(x) for x in lines if x.strip()]

    return read("questions.jsonl"), read("unanswerable.jsonl")


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ranks(files: list[str], gold: set[str]) -> tuple[bool, float]:
    """(hit in the top 5 chunks, reciprocal rank of the first chunk from a gold file)."""
    rank = next((i for i, f in enumerate(files[:10], start=1) if f in gold), None)
    return bool(rank and rank <= 5), 1.0 / rank if rank else 0.0


def quality(searcher: Searcher, questions: list[dict]) -> dict:
    out = {}
    for mode in ("dense", "bm25", "hybrid"):
        hits, rr = [], []
        for q in questions:
            found = [
                os.path.basename(h.path) for h in searcher.search(q["question"], 10, mode=mode)
            ]
            hit, reciprocal = ranks(found, {q["file"], *q.get("also", [])})
            hits.append(hit)
            rr.append(reciprocal)
        out[mode] = {
            "recall@5": round(float(np.mean(hits)), 3),
            "mrr@10": round(float(np.mean(rr)), 3),
        }
    return out


def refused(searcher: Searcher, questions: list[dict]) -> list[str]:
    return [
        q["question"] for q in questions if not searcher.search(q["question"], 5, calibrated=True)
    ]


def index_eval(set_name: str, setting: str) -> dict:
    """Index an eval corpus with one embedder setting, then embed the same chunks alone (each in
    its space), side by side: ingest ÷ embed-only."""
    router = create_embedder(setting)
    if not isinstance(router, RoutedEmbedder):
        router = RoutedEmbedder.single(router, setting)
    for space in router.spaces:  # loaded before timing: model load is not ingest
        router.get(space).embed(["warm up"] * 8)
    coll = create_or_open(
        f"{set_name}-{setting}", embedder=setting, chunk_tokens=200, chunk_overlap=32
    )
    began = time.perf_counter()
    summary = index_paths(coll, [BENCH / set_name / "corpus"], lambda: router, OPTIONS)
    ingest = time.perf_counter() - began
    alone = retrieval_speed.embed_only_s(coll, router)
    n = coll.manifest.counts()[1]
    return {
        "collection": coll,
        "router": router,
        "files": summary.files_total,
        "chunks": n,
        "chunks_per_space": coll.space_counts(),
        "index_s": round(ingest, 2),
        "ingest_chunks_per_s": round(n / ingest, 1),
        "embed_only_chunks_per_s": round(n / alone, 1),
        "ingest_over_embed": round(alone / ingest, 3),
    }


def answer_accuracy(collection: str, questions: list[dict], unanswerable: list[dict]) -> dict:
    """The bundled SmolLM2 answering through the session, with and without the collection."""
    from chatapp.domain import GenerationParams
    from chatapp.engine.factory import create_backend
    from chatapp.retrieval.search.grounding import DocumentRetriever
    from chatapp.session.chat_session import ChatSession
    from chatapp.session.turns import TurnRequest, consume

    settings = load_settings({"generation": {"max_tokens": 96}})
    backend = create_backend(settings)
    params = GenerationParams(temperature=0.0, seed=0, max_tokens=96)
    retriever = DocumentRetriever(settings)
    session = ChatSession(
        backend,
        None,
        system_prompt=settings.chat.system_prompt,
        params=params,
        retriever=retriever,
        settings=settings,
    )

    def reply(text: str, grounded: bool) -> tuple[str, str]:
        request = TurnRequest(text, collection=collection if grounded else None, store=False)
        result = consume(session.send(request))
        return result.kind, result.text

    with_rag, without, refused_answerable = [], [], 0
    for q in questions:
        fact = q["answer"].lower()
        without.append(fact in reply(q["question"], False)[1].lower())
        kind, text = reply(q["question"], True)
        refused_answerable += kind == "refusal"
        with_rag.append(kind == "reply" and fact in text.lower())
    refusals = sum(reply(q["question"], True)[0] == "refusal" for q in unanswerable)
    retriever.close()
    backend.close()
    return {
        "accuracy_without_retrieval": round(float(np.mean(without)), 3),
        "accuracy_with_retrieval": round(float(np.mean(with_rag)), 3),
        "refusal_rate_unanswerable": round(refusals / len(unanswerable), 3),
        "refused_answerable": refused_answerable,
    }


def speed_samples(runs: dict) -> dict[str, list[str]]:
    """The same Korean and English chunks for every embedder: Korean-language chunks of the
    Korean corpus and chunks of the English corpus, as the indexer embeds them."""
    ko = runs["korean"]["auto"]["collection"]
    en = runs["english"]["auto"]["collection"]
    ko_chunks = [c for c in ko.manifest.all_chunks() if c.space == "use-multilingual"]
    step = max(1, len(ko_chunks) // retrieval_speed.SAMPLE)
    en_chunks = en.manifest.all_chunks()
    en_step = max(1, len(en_chunks) // retrieval_speed.SAMPLE)
    return {
        "korean": [embed_text(c.path, c) for c in ko_chunks[::step]][: retrieval_speed.SAMPLE],
        "english": [embed_text(c.path, c) for c in en_chunks[::en_step]][: retrieval_speed.SAMPLE],
    }


def open_auto(reuse: dict) -> Callable[[retrieval_protocol.EvalSet], Searcher]:
    """An eval set's collection under the default pipeline: the one indexed above when there is
    one, else indexed here (not timed)."""
    router: list[RoutedEmbedder] = []

    def searcher(evalset: retrieval_protocol.EvalSet) -> Searcher:
        if evalset.folder in reuse:
            run = reuse[evalset.folder]
            return Searcher(run["collection"], run["router"])
        if not router:
            made = create_embedder("auto")
            assert isinstance(made, RoutedEmbedder)
            router.append(made)
        coll = create_or_open(
            f"{evalset.name}-auto", embedder="auto", chunk_tokens=200, chunk_overlap=32
        )
        index_paths(coll, [BENCH / evalset.folder / "corpus"], lambda: router[0], OPTIONS)
        return Searcher(coll, router[0])

    return searcher


def protocol_only() -> dict:
    results = {"quality_only": True, "protocol": retrieval_protocol.run(open_auto({}))}
    report_protocol(results["protocol"])
    out = BENCH / "results" / "retrieval-quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return results


def report_protocol(protocol: dict) -> None:
    rows = retrieval_protocol.report_lines(protocol["cross"])
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main() -> dict:
    if QUALITY_ONLY:
        return protocol_only()
    results: dict = {"quick": QUICK}
    runs: dict = {}
    sets = {}
    for language, (set_name, settings) in SETS.items():
        questions, unanswerable = load_set(set_name)
        sets[language] = (questions, unanswerable)
        runs[language] = {}
        for setting in settings:
            run = index_eval(set_name, setting)
            searcher = Searcher(run["collection"], run["router"])
            run["quality"] = quality(searcher, questions)
            wrong = refused(searcher, questions)
            run["refusal_rate_unanswerable"] = round(
                len(refused(searcher, unanswerable)) / len(unanswerable), 3
            )
            run["false_refusals_answerable"] = f"{len(wrong)}/{len(questions)}"
            run["false_refusal_rate_answerable"] = round(len(wrong) / len(questions), 3)
            run["falsely_refused"] = wrong
            runs[language][setting] = run
            print(f"{language} {setting}: {run['quality']['hybrid']}", file=sys.stderr, flush=True)
    for language, per_setting in runs.items():
        results[language] = {
            setting: {k: v for k, v in run.items() if k not in ("collection", "router")}
            for setting, run in per_setting.items()
        }
    en = runs["english"]
    results["fast_index_speedup"] = round(en["auto"]["index_s"] / en["fast"]["index_s"], 1)
    results["fast_hybrid_recall_gap_points"] = round(
        100
        * (
            en["auto"]["quality"]["hybrid"]["recall@5"]
            - en["fast"]["quality"]["hybrid"]["recall@5"]
        ),
        1,
    )
    results["embedders"] = retrieval_speed.embedder_speeds(speed_samples(runs))
    questions = {k: [q["question"] for q in v[0]] for k, v in sets.items()}
    results["folders"] = retrieval_speed.folders(questions["english"], questions["korean"], QUICK)
    auto = {
        run["collection"].name.rsplit("-", 1)[0]: run
        for run in [runs["english"]["auto"], runs["korean"]["auto"]]
    }
    results["protocol"] = retrieval_protocol.run(open_auto(auto))
    results["peak_rss_mib_retrieval"] = peak_rss_mib()
    if not QUICK:
        results["answers_english"] = answer_accuracy(
            en["auto"]["collection"].name, *sets["english"]
        )
        results["peak_rss_mib_with_chat_model"] = peak_rss_mib()
    for per_setting in runs.values():
        for run in per_setting.values():
            run["collection"].close()
    report(results)
    report_protocol(results["protocol"])
    out = BENCH / "results" / ("retrieval-quick.json" if QUICK else "retrieval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return results


def report(r: dict) -> None:
    rows = []
    for language in SETS:
        for setting, run in r[language].items():
            q = run["quality"]
            modes = " | ".join(f"{m} {q[m]['recall@5']}/{q[m]['mrr@10']}" for m in q)
            rows.append((f"{language} {setting}: recall@5/MRR@10", modes))
            rows.append(
                (
                    f"{language} {setting}: refused unanswerable / answerable",
                    f"{run['refusal_rate_unanswerable']} / {run['false_refusals_answerable']}",
                )
            )
            rows.append(
                (
                    f"{language} {setting}: ingest ÷ embed-only",
                    f"{run['ingest_over_embed']} ({run['ingest_chunks_per_s']} vs "
                    f"{run['embed_only_chunks_per_s']} chunks/s, {run['chunks']} chunks)",
                )
            )
    for language in ("korean", "english"):
        for name, rate in r["embedders"][language].items():
            if isinstance(rate, dict):
                rows.append(
                    (
                        f"embed {language} {name}",
                        f"{rate['chunks_per_s']} chunks/s, "
                        f"{rate['kb_per_s']} KB/s (range {rate['chunks_per_s_range']})",
                    )
                )
    for name, folder in r["folders"].items():
        rows.append(
            (
                f"index {name} (default pipeline)",
                f"{folder['index_s']} s, {folder['chunks']} chunks, {folder['kb_per_s']} KB/s",
            )
        )
        if "ingest_over_embed" in folder:
            sampled = folder.get("embed_only_sampled_every")
            how = f", embed-only from every {sampled}th chunk" if sampled else ""
            rows.append(
                (
                    f"index {name}: ingest ÷ embed-only (target ≥ 0.85)",
                    f"{folder['ingest_over_embed']} (CPU {folder['ingest_over_embed_cpu']}{how})",
                )
            )
        for key in ("query_latency_english", "query_latency_korean"):
            if key in folder:
                lat = folder[key]
                rows.append(
                    (f"query {name} {key[14:]} p50/p95", f"{lat['p50_ms']} / {lat['p95_ms']} ms")
                )
        if "reindex_over_first" in folder:
            rows.append((f"re-index unchanged ÷ first ({name})", str(folder["reindex_over_first"])))
    rows.append(("fast-mode index speed-up (English)", f"{r['fast_index_speedup']}×"))
    if "answers_english" in r:
        a = r["answers_english"]
        rows.append(
            (
                "SmolLM2 accuracy without / with retrieval (English)",
                f"{a['accuracy_without_retrieval']} / {a['accuracy_with_retrieval']}",
            )
        )
    rows.append(
        ("peak RSS (MiB)", str(r.get("peak_rss_mib_with_chat_model", r["peak_rss_mib_retrieval"])))
    )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

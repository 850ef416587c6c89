"""Grounded prefill benchmark: what the model reads before a grounded answer, before and after
trimming sources to their answering sentences and moving the rules into the system prompt —
side by side, same questions, same retrieved sources, one run.

"Before" is the grounded turn as chatapp built it until now (reconstructed here: the rules, the
whole retrieved chunks fenced, the question and the reminder in the user turn); "after" is what
the session builds today (rules at the end of the system prompt, sources cut to
``retrieval.source_tokens`` and listed best last, nearest the question). On the English eval set (benchmarks/retrieval_eval: CMake docs,
50 questions with the key fact of each answer) and the Korean one (benchmarks/retrieval_eval_ko,
67 questions with the answering page):

- prompt tokens of the grounded turn (bundled SmolLM2's tokenizer): after ÷ before, target ≤ 0.6;
- recall of the answer-bearing passage: the question's key fact present in the sources the model
  reads (English; the Korean set names pages, not facts, so there: a source from the answering
  page is still read);
- time to first token, cold (empty KV cache), and for the next grounded question right after
  one (what stays cached is the shared prefix: the system prompt, with the rules after the
  change), alternated;
- SmolLM2's answer accuracy (the reply contains the key fact, temperature 0), before and after.

``--quick``: fewer questions; ``--only english`` / ``--only korean``: one set; ``--no-timing``: skip
the TTFT runs (the token counts, recall and accuracy are deterministic; only timing needs a quiet
machine). Writes benchmarks/results/grounded_prefill.json (a partial run writes
grounded_prefill-partial.json).
"""

from __future__ import annotations

import json
import os
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

QUICK = "--quick" in sys.argv
TIMING = "--no-timing" not in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
BENCH = ROOT / "benchmarks"
SETS = {
    label: name
    for label, name in {"english": "retrieval_eval", "korean": "retrieval_eval_ko"}.items()
    if ONLY in (None, label)
}
LIMIT = {"english": 16 if QUICK else 50, "korean": 16 if QUICK else 67}
TIMED = 6 if QUICK else 12


def load_questions(name: str) -> list[dict]:
    lines = (BENCH / name / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def index(set_name: str) -> str:
    from chatapp.embedding.embedder import create_embedder
    from chatapp.retrieval.ingest.indexing import IndexOptions, index_paths
    from chatapp.retrieval.store.collection import create_or_open

    name = f"prefill-{set_name.replace('_', '-')}"
    coll = create_or_open(name, embedder="auto", chunk_tokens=200, chunk_overlap=32)
    options = IndexOptions(exclude=["NOTICE", "LICENSE*", "README*"])
    index_paths(coll, [BENCH / set_name / "corpus"], lambda: create_embedder("auto"), options)
    coll.close()
    return name


def before_messages(session, question: str, retrieval) -> list:
    """The grounded turn as it was built before this change."""
    from chatapp.domain import ChatMessage
    from chatapp.prompting.grounded import grounding_texts, source_block

    texts = grounding_texts(retrieval.language)
    blocks = "\n\n".join(source_block(n, s) for n, s in enumerate(retrieval.sources, start=1))
    user = (
        f"{texts.rules}\n\n{blocks}\n\n{texts.question_label}: {question.strip()}\n\n"
        f"{texts.reminder}"
    )
    return [ChatMessage("system", session.system_prompt), ChatMessage("user", user)]


def first_token_s(backend, messages, params) -> float:
    from chatapp.domain import TokenEvent

    started = time.perf_counter()
    for event in backend.stream_chat(messages, params):
        if isinstance(event, TokenEvent):
            return time.perf_counter() - started
    return time.perf_counter() - started


def reply_contains(backend, messages, params, fact: str) -> bool:
    """Whether the reply holds ``fact``; it stops once it does (the same verdict as reading
    the whole reply, in less time)."""
    from chatapp.domain import TokenEvent

    text = ""
    for event in backend.stream_chat(messages, params):
        if isinstance(event, TokenEvent):
            text += event.text.lower()
            if fact in text:
                return True
    return False


def measure_set(label: str, set_name: str, backend, settings) -> dict:
    from chatapp.domain import GenerationParams
    from chatapp.retrieval.search.grounding import DocumentRetriever
    from chatapp.session import ChatSession, TurnRequest

    collection = index(set_name)
    retriever = DocumentRetriever(settings)
    session = ChatSession.from_settings(settings, backend, None, retriever=retriever)
    questions = load_questions(set_name)[: LIMIT[label]]
    greedy = GenerationParams(temperature=0.0, seed=0, max_tokens=96)
    first = GenerationParams(temperature=0.0, seed=0, max_tokens=1)
    rows = []
    for q in questions:
        request = TurnRequest(q["question"], collection=collection, store=False)
        prepared = session.prepare(request)
        if prepared.plan is None:  # refused: nothing is read either way
            continue
        retrieval = prepared.retrieval
        old = before_messages(session, q["question"], retrieval)
        new = prepared.plan.messages
        old_text = "\n".join(m.content for m in old)
        new_text = "\n".join(m.content for m in new)
        gold = {q["file"], *q.get("also", [])}
        row = {
            "before_tokens": backend.count_chat_tokens(old),
            "after_tokens": backend.count_chat_tokens(new, first),
        }
        if "answer" in q:
            fact = q["answer"].lower()
            row["before_has_fact"] = fact in old_text.lower()
            row["after_has_fact"] = fact in new_text.lower()
        else:
            row["before_has_page"] = any(
                os.path.basename(s.path) in gold for s in retrieval.sources
            )
            row["after_has_page"] = any(os.path.basename(s.path) in gold for s in prepared.sources)
        rows.append((q, old, new, row))
    timings = {"cold_before": [], "cold_after": [], "next_before": [], "next_after": []}
    timed = rows[: TIMED + 1] if TIMING else []
    for i in range(len(timed) - 1):
        for which in ("before", "after") if i % 2 == 0 else ("after", "before"):
            pick = 1 if which == "before" else 2
            backend.llama.reset()
            timings[f"cold_{which}"].append(first_token_s(backend, timed[i][pick], first))
            # The next grounded question right after: what stays cached is the shared prefix
            # (the system prompt, with the rules in it after the change).
            timings[f"next_{which}"].append(first_token_s(backend, timed[i + 1][pick], first))
    accuracy: dict[str, float] = {}
    if "answer" in questions[0]:
        for which in ("before", "after"):
            hits = []
            for q, old, new, _row in rows:
                messages = old if which == "before" else new
                hits.append(reply_contains(backend, messages, greedy, q["answer"].lower()))
            accuracy[which] = round(sum(hits) / len(hits), 3)
    retriever.close()
    table = [r for *_, r in rows]
    before = statistics.mean(r["before_tokens"] for r in table)
    after = statistics.mean(r["after_tokens"] for r in table)
    key = "fact" if "answer" in questions[0] else "page"
    out = {
        "questions": len(table),
        "prompt_tokens_before": round(before, 1),
        "prompt_tokens_after": round(after, 1),
        "ratio": round(after / before, 3),
        f"recall_{key}_before": round(statistics.mean(r[f"before_has_{key}"] for r in table), 3),
        f"recall_{key}_after": round(statistics.mean(r[f"after_has_{key}"] for r in table), 3),
        **{f"ttft_{k}_s": round(statistics.median(v), 4) for k, v in timings.items() if v},
    }
    if timings["cold_before"]:
        cold = statistics.median(timings["cold_after"]) / statistics.median(timings["cold_before"])
        out["ttft_cold_ratio"] = round(cold, 3)
    if accuracy:
        out["answer_accuracy_before"] = accuracy["before"]
        out["answer_accuracy_after"] = accuracy["after"]
    return out


def main() -> dict:
    from chatapp.config import load_settings
    from chatapp.engine.factory import create_backend

    settings = load_settings({"model": {"kv_cache_mb": 0}})
    backend = create_backend(settings)
    load = os.getloadavg()[0]
    results = {
        "source_tokens": settings.retrieval.source_tokens,
        "threads": getattr(backend, "n_threads", None),
        **{label: measure_set(label, name, backend, settings) for label, name in SETS.items()},
        "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
        "target": {"prompt_token_ratio_max": 0.6},
    }
    backend.close()
    print(f"grounded prefill — sources cut to {results['source_tokens']} tokens, rules in the "
          f"system prompt; load {results['load_average_1min']}")  # fmt: skip
    for label in SETS:
        r = results[label]
        recall = {k: v for k, v in r.items() if k.startswith("recall_")}
        print(f"  {label}: prompt tokens {r['prompt_tokens_before']} → {r['prompt_tokens_after']}"
              f" (ratio {r['ratio']}, target ≤ 0.6) · {recall}")  # fmt: skip
        if "ttft_cold_ratio" in r:
            print(f"    cold TTFT {r['ttft_cold_before_s']} → {r['ttft_cold_after_s']} s, next "
                  f"question {r['ttft_next_before_s']} → {r['ttft_next_after_s']} s")  # fmt: skip
        if "answer_accuracy_before" in r:
            print(f"    SmolLM2 answer accuracy {r['answer_accuracy_before']} → "
                  f"{r['answer_accuracy_after']}")  # fmt: skip
    name = "grounded_prefill"
    if QUICK:
        name += "-quick"
    elif ONLY or not TIMING:
        name += "-partial"
    out = BENCH / "results" / f"{name}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    return results


if __name__ == "__main__":
    main()

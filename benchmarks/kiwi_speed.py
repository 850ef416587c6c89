"""Kiwi (Korean morphemes) options side by side: CPU seconds per MB of the Korean eval corpus
(benchmarks/retrieval_eval_ko/corpus, the Korean React docs) to make every chunk's keyword
terms as the indexer's reader does, and how many chunks get other terms than the setting before
(Kiwi(num_workers=-1), each chunk analysed whole).

The chunks are made once (the default pipeline's chunking: 200 tokens, 32 overlap, sized by
the ``auto`` embedders' tokenizers) and every variant analyses the same chunks in turn, rounds
alternating; CPU time is the process's (time.process_time: Kiwi's worker threads too), so the
figures hold on a busy machine. Run: ``python benchmarks/kiwi_speed.py`` (prints JSON;
``--quality`` adds each variant's Korean recall@5 / MRR@10, ``--all`` more variants, cong-global
among them).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from chatapp.embedding.embedder import create_embedder  # noqa: E402
from chatapp.retrieval.ingest.chunking import chunk_blocks  # noqa: E402
from chatapp.retrieval.ingest.loaders import parse_file, read_file  # noqa: E402
from chatapp.retrieval.ingest.reader import page_language  # noqa: E402
from chatapp.text import korean  # noqa: E402
from chatapp.text.language import has_hangul  # noqa: E402

CORPUS = ROOT / "benchmarks" / "retrieval_eval_ko" / "corpus"
ROUNDS = 3
BEFORE = "before: num_workers=-1, per chunk"
ORIGINAL = korean.korean_terms_many
LOAD_CPU: dict[str, float] = {}
"""CPU seconds each analyser took to load (model and dictionaries) and analyse a word."""
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+(?=\S)")


def corpus_chunks() -> tuple[list[list[str]], int]:
    """Per file, the texts whose terms the indexer makes ("name heading\\ntext"), and bytes."""
    router = create_embedder("auto")
    files, nbytes = [], 0
    for path in sorted(CORPUS.glob("*.md")):
        data, _ = read_file(path)
        nbytes += len(data)
        _, blocks = parse_file(path, data)
        chunks = chunk_blocks(blocks, router.chunk_counter(page_language(blocks)), 200, 32)
        files.append([f"{path.name} {c.heading_text}\n{c.text}" for c in chunks])
    return files, nbytes


def hangul_text(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if has_hangul(line))


def content(tokens: list) -> list[str]:
    out = []
    for token in tokens:
        if token.tag.split("-", 1)[0] not in korean.CONTENT_TAGS:
            continue
        if token.form in korean.STOP_FORMS or token.form.isascii():
            continue
        out.append(token.form)
    return out


def variants() -> dict[str, Callable[[list[str]], list[list[str]]]]:
    """name -> function from one file's chunk texts to their Korean terms."""
    from kiwipiepy import Kiwi, Match

    made: dict[str, Kiwi] = {}

    def analyser(**options: object) -> Kiwi:
        key = repr(sorted(options.items()))
        if key not in made:
            began = time.process_time()
            made[key] = Kiwi(**options)  # type: ignore[arg-type]
            made[key].tokenize("준비")
            LOAD_CPU[key] = round(time.process_time() - began, 2)
        return made[key]

    def per_chunk(k: Kiwi, match: int = Match.ALL) -> Callable[[list[str]], list[list[str]]]:
        return lambda texts: [
            content(k.tokenize(hangul_text(t), match_options=match)) for t in texts
        ]

    def batched(k: Kiwi) -> Callable[[list[str]], list[list[str]]]:
        return lambda texts: [content(toks) for toks in k.tokenize([hangul_text(t) for t in texts])]

    def cached(
        k: Kiwi, units: Callable[[str], list[str]], match: int = Match.ALL
    ) -> Callable[[list[str]], list[list[str]]]:
        """Each distinct unit (line or sentence) of a file's chunks analysed once, all in one
        call: chunks overlap by sentences and repeat their heading line."""

        def run(texts: list[str]) -> list[list[str]]:
            cache: dict[str, list[str]] = {}  # per file: repeats are within a file
            split = [units(hangul_text(t)) for t in texts]
            new = list(dict.fromkeys(u for us in split for u in us))
            for unit, toks in zip(new, k.tokenize(new, match_options=match), strict=True):
                cache[unit] = content(toks)
            return [[term for u in us for term in cache[u]] for us in split]

        return run

    def lines(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.strip()]

    def sentences(text: str) -> list[str]:
        return [p for ln in text.splitlines() for p in _SENTENCE.split(ln) if p.strip()]

    current = analyser(num_workers=-1)
    batcher = analyser(num_workers=1)
    no_multi = analyser(num_workers=1, load_multi_dict=False)
    lean = analyser(num_workers=1, load_typo_dict=False, load_multi_dict=False)
    out: dict[str, Callable[[list[str]], list[list[str]]]] = {
        BEFORE: per_chunk(current),
        "match_options=0, per chunk": per_chunk(current, 0),
        "batched per file (num_workers=1)": batched(batcher),
        "batched per file (num_workers=2)": batched(analyser(num_workers=2)),
        "no multi-word dict, batched": batched(no_multi),
        "no typo/multi dicts, batched": batched(lean),
        "sentences cached per file": cached(batcher, sentences),
        "no multi-word dict, sentences cached": cached(no_multi, sentences),
        "chatapp (korean.korean_terms_many)": ORIGINAL,
    }
    if "--all" in sys.argv:
        out["lines cached per file"] = cached(batcher, lines)
        out["cong-global, per chunk"] = per_chunk(analyser(num_workers=0, model_type="cong-global"))
    return out


def main() -> dict:
    files, nbytes = corpus_chunks()
    n_chunks = sum(len(f) for f in files)
    runs = variants()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    terms: dict[str, list[list[str]]] = {}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            began = time.process_time()
            got = [t for texts in files for t in run(texts)]
            seconds[name].append(time.process_time() - began)
            terms[name] = got
    base = terms[BEFORE]
    mb = nbytes / 1024 / 1024
    result: dict = {"chunks": n_chunks, "mb": round(mb, 2), "variants": {}}
    for name in runs:
        cpu = statistics.median(seconds[name])
        same = sum(a == b for a, b in zip(terms[name], base, strict=True))
        as_bags = sum(sorted(a) == sorted(b) for a, b in zip(terms[name], base, strict=True))
        result["variants"][name] = {
            "cpu_s_per_mb": round(cpu / mb, 2),
            "cpu_s_range": [round(min(seconds[name]), 2), round(max(seconds[name]), 2)],
            "chunks_same_terms": f"{same}/{n_chunks}",
            "chunks_same_bag": f"{as_bags}/{n_chunks}",
        }
    result["load_cpu_s"] = LOAD_CPU
    if "--quality" in sys.argv:
        result["quality"] = quality(runs)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return result


def quality(runs: dict[str, Callable[[list[str]], list[list[str]]]]) -> dict:
    """Korean recall@5 / MRR@10 (bm25 and hybrid) of each variant on the quick benchmark's
    Korean set: the corpus is indexed once (``auto``); each variant's terms then make the
    keyword index, and the queries are analysed by the same variant."""
    from benchmarks import retrieval
    from chatapp.retrieval.search.hybrid import Searcher
    from chatapp.retrieval.store.keywords import LexicalIndex
    from chatapp.text.terms import chunk_terms

    questions, _ = retrieval.load_set("retrieval_eval_ko")
    run = retrieval.index_eval("retrieval_eval_ko", "auto")
    coll = run["collection"]
    chunks = coll.manifest.all_chunks()
    searcher = Searcher(coll, run["router"])
    out = {}
    try:
        for name, variant in runs.items():
            korean.korean_terms_many = variant  # type: ignore[assignment]
            corpus = [chunk_terms(os.path.basename(c.path), c.heading, c.text) for c in chunks]
            searcher._lexical = LexicalIndex.from_terms([c.id for c in chunks], corpus)
            searcher._lexical_generation = coll.manifest.generation
            q = retrieval.quality(searcher, questions)
            out[name] = {mode: q[mode] for mode in ("bm25", "hybrid")}
    finally:
        korean.korean_terms_many = ORIGINAL
        coll.close()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2, ensure_ascii=False))

"""Cold ``chatapp search``: each search a fresh process, as a user types it in a shell, against
``python -c "import numpy"`` in the same run (the machine's speed and load cancel out).

A small collection (8 CMake command pages and 4 Korean React pages from the retrieval eval
corpora, indexed with the default ``auto`` pipeline) is searched with an English and a Korean
question. Each round runs the three commands one after another, rotating their order; the
figures are medians over the rounds, as wall-clock seconds and as CPU seconds of the child
(user + sys), each divided by numpy's. Target (issue 29): ≤ 10× for both questions. One more
run of each search in a wrapper reports which heavy libraries it imported, and the query
vectors are compared with the full models' (sentence-transformers MiniLM in fp32 — and in bf16
where this CPU has it, which is what indexing used — and USE multilingual's own encoder).

    python benchmarks/cold_search.py [--rounds 3] [--home DIR] [--tree DIR] [--label TEXT]
                                     [--out FILE]

``--home`` reuses (or makes, once) the indexed collection there; ``--tree`` measures another
checkout's ``chatapp`` package (put first on the path), e.g. the code before a change. Writes
benchmarks/results/cold_search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "cold_search.json"
COLLECTION = "cold"
ENGLISH_FILES = (
    "add_subdirectory.rst",
    "add_custom_command.rst",
    "add_library.rst",
    "add_executable.rst",
    "add_test.rst",
    "install.rst",
    "set.rst",
    "target_link_libraries.rst",
)
KOREAN_FILES = (
    "conditional-rendering.md",
    "creating-a-react-app.md",
    "rendering-lists.md",
    "responding-to-events.md",
)
QUERIES = {
    "en": "How do I include another directory that has its own CMakeLists.txt in my build?",
    "ko": "리스트를 렌더링할 때 배열 인덱스를 key로 쓰면 어떤 문제가 생기나요?",
}
HEAVY = (
    "torch",
    "sentence_transformers",
    "transformers",
    "chromadb",
    "bm25s",
    "scipy",
    "kiwipiepy",
)
WRAPPER = """
import sys
from chatapp.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = %r
print("IMPORTED " + " ".join(m for m in heavy if m in sys.modules), file=sys.stderr)
"""


def make_collection(home: Path) -> None:
    """Index the small corpus into ``home`` (once: an existing collection is kept)."""
    if (home / "data" / "collections" / "manifests" / COLLECTION).exists():
        return
    corpus = home / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    english = ROOT / "benchmarks" / "retrieval_eval" / "corpus" / "cmake-commands"
    korean = ROOT / "benchmarks" / "retrieval_eval_ko" / "corpus"
    for name in ENGLISH_FILES:
        shutil.copy(english / name, corpus / name)
    for name in KOREAN_FILES:
        shutil.copy(korean / name, corpus / name)
    subprocess.run(
        [sys.executable, "-m", "chatapp", "index", str(corpus), "-C", COLLECTION],
        env=_env(home, None),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _env(home: Path, tree: Path | None) -> dict[str, str]:
    env = dict(os.environ, CHATAPP_HOME=str(home), HF_HUB_OFFLINE="1")
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + sys) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tempfile.gettempdir(), capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{command}: exit {done.returncode}\n{done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def search_command(query: str) -> list[str]:
    return [sys.executable, "-m", "chatapp", "search", query, "-C", COLLECTION, "-k", "5"]


def imported(query: str, env: dict[str, str]) -> list[str]:
    """The heavy libraries a search process imported."""
    script = WRAPPER % (HEAVY,)
    args = ["search", query, "-C", COLLECTION, "-k", "5"]
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
    )
    line = [x for x in done.stderr.splitlines() if x.startswith("IMPORTED")]
    return line[-1].split()[1:] if line else ["?"]


def vector_agreement() -> dict[str, Any]:
    """Cosine of the query encoders' vectors to the full models' vectors."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from chatapp.embedding.embedder import SentenceTransformerEmbedder
    from chatapp.embedding.multilingual import UniversalSentenceEncoder
    from chatapp.embedding.query import embed_query

    texts = list(QUERIES.values())
    minilm = SentenceTransformerEmbedder()
    out: dict[str, Any] = {}
    light = np.stack([embed_query("bundled", t) for t in texts])
    precision = minilm.precision
    minilm.precision = "fp32"
    full = minilm.embed(texts)
    out["minilm_fp32_min_cosine"] = round(float(np.min(np.sum(light * full, axis=1))), 6)
    if precision == "bf16":  # the vectors this CPU indexed with
        minilm.precision = "bf16"
        bf16 = minilm.embed(texts)
        out["minilm_bf16_index_min_cosine"] = round(float(np.min(np.sum(light * bf16, axis=1))), 6)
    use = UniversalSentenceEncoder()
    light = np.stack([embed_query("use-multilingual", t) for t in texts])
    full = np.stack([use.embed([t])[0] for t in texts])  # queries: its numpy pass
    out["use_min_cosine"] = round(float(np.min(np.sum(light * full, axis=1))), 6)
    out["use_max_abs_difference"] = float(np.max(np.abs(light - full)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--tree", type=Path, default=None, help="another checkout's root")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default="", help="what the measured tree is (recorded)")
    parser.add_argument("--no-vectors", action="store_true", help="skip the vector check")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="chatapp-cold-"))
    make_collection(home)
    env = _env(home, args.tree)
    commands = {
        "numpy": [sys.executable, "-c", "import numpy"],
        **{lang: search_command(q) for lang, q in QUERIES.items()},
    }
    for command in commands.values():  # warm the page cache (and any per-user cache)
        _timed(command, env)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    names = list(commands)
    for round_ in range(args.rounds):
        for name in names[round_ % 3 :] + names[: round_ % 3]:
            runs[name].append(_timed(commands[name], env))
    wall = {name: statistics.median(w for w, _ in r) for name, r in runs.items()}
    cpu = {name: statistics.median(c for _, c in r) for name, r in runs.items()}
    result: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "tree": args.label or str(args.tree or ROOT),
        "rounds": args.rounds,
        "queries": QUERIES,
        "median_wall_s": {k: round(v, 3) for k, v in wall.items()},
        "median_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "wall_ratio_to_numpy": {k: round(wall[k] / wall["numpy"], 1) for k in QUERIES},
        "cpu_ratio_to_numpy": {k: round(cpu[k] / cpu["numpy"], 1) for k in QUERIES},
        "runs": {k: [[round(w, 3), round(c, 3)] for w, c in r] for k, r in runs.items()},
        "imported": {lang: imported(q, env) for lang, q in QUERIES.items()},
        "target_ratio": 10,
    }
    if not args.no_vectors:
        result["query_vectors"] = vector_agreement()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

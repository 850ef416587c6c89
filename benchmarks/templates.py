"""Sentiment templates on Korean movie reviews (NSMC): zero-shot vs fixed 4-shot vs similar
4-shot, each with and without the output constraint, on the bundled SmolLM2-135M.

Every configuration runs in one process on one loaded model, through the same code path as
``chatapp eval`` (so the README figures can be reproduced with the command printed below).
Prints a table and writes ``benchmarks/results/templates.json``.

    .venv/bin/python benchmarks/templates.py [--limit N] [--template sentiment]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = ROOT / "benchmarks" / "data" / "nsmc_dev.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "templates.json"
DEFAULT_LIMIT = 100
"""The first 100 reviews (49 positive, 51 negative): 600 generations, about 15 minutes on 2
shared cores; use --limit 400 for the whole set."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT)
    parser.add_argument("--template", default="sentiment")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--model", default=None, help="model name or GGUF path")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="llama.cpp threads (default: every core; on cores shared with other work, 1 "
        "thread can be several times faster because llama.cpp's threads wait by spinning)",
    )
    args = parser.parse_args()

    from chatapp.config import load_settings
    from chatapp.engine.factory import create_backend, generation_params
    from chatapp.evaluation.dataset import load_eval_file
    from chatapp.evaluation.report import results_document, results_table, write_results
    from chatapp.evaluation.runner import expand_configs, run_all
    from chatapp.prompting import get_template
    from chatapp.prompting.turn import default_embedder

    overrides: dict = {"generation": {"seed": 0}}
    if args.threads:
        overrides["model"] = {"n_threads": args.threads}
    settings = load_settings(overrides)
    template = get_template(args.template)
    data = load_eval_file(args.data, limit=args.limit)
    configs = expand_configs([template], (0, 4), ("fixed", "similar"), (True, False))

    started = time.perf_counter()
    backend = create_backend(settings, model=args.model)
    load_s = time.perf_counter() - started
    embedder = default_embedder()
    done = [0]
    total = len(configs) * len(data.items)

    def progress(config, item) -> None:
        done[0] += 1
        if done[0] % 20 == 0 or done[0] == total:
            print(f"  {done[0]}/{total} {config.label}", file=sys.stderr, flush=True)

    load = os.getloadavg()[0]
    results = run_all(
        configs, data, backend, generation_params(settings), embedder=embedder, on_item=progress
    )
    wall_s = time.perf_counter() - started

    from rich.console import Console

    Console(width=120).print(
        results_table(
            results,
            f"{args.template} on {args.data.name}: first {len(data.items)} reviews, "
            f"{backend.identity.name}",
        )
    )
    baseline = results[0].metrics
    summary = []
    for result in results:
        m = result.metrics
        summary.append(
            {
                "configuration": result.config.label,
                "accuracy": round(m["accuracy"], 4),
                "macro_f1": round(m["macro_f1"], 4),
                "invalid_rate": round(m["invalid_rate"], 4),
                "seconds_per_item": round(m["seconds_per_item"], 3),
                "accuracy_minus_zero_shot_constrained": round(
                    m["accuracy"] - baseline["accuracy"], 4
                ),
                "time_per_item_vs_zero_shot_constrained": round(
                    m["seconds_per_item"] / baseline["seconds_per_item"], 2
                ),
            }
        )
    command = (
        f"chatapp eval {args.template} --data benchmarks/data/{args.data.name} "
        f"--limit {args.limit} --shots 0,4 --select fixed,similar --constraint both"
    )
    if args.threads:
        command = f"CHATAPP_MODEL__N_THREADS={args.threads} {command}"
    document = results_document(
        results, data, {"seed": 0, "limit": args.limit}, backend.identity.to_dict()
    )
    document["summary"] = summary
    document["reproduce"] = command
    document["timing"] = {
        "model_load_s": round(load_s, 2),
        "wall_s": round(wall_s, 1),
        "load_average_at_start": round(load, 2),
        "cpus": os.cpu_count(),
        "n_threads": settings.model.n_threads or os.cpu_count(),
    }
    write_results(document, args.output)
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    print(f"reproduce: {command}")
    print(
        f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}"
    )
    backend.close()


if __name__ == "__main__":
    main()

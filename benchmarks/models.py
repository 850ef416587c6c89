"""Models benchmark: downloads, resume, model load, and the HTTP backend's overhead. One run,
side by side:

1. download throughput of ``chatapp models pull`` (which also verifies sha256 while it
   downloads) ÷ plain ``huggingface_hub.hf_hub_download`` (no verification) on the same local
   hub server (tests/support/hub_server.py) and the same file (the bundled 98 MB GGUF),
   alternated, medians compared — once at loopback speed and once with the server capped at a
   fast home-internet pace (target ≥ 0.95);
2. resume: the connection drops at 50% and the server then refuses; the next pull's bytes
   fetched beyond what was missing, ÷ the bytes already on disk (target ≤ 1%);
3. load time of the bundled model through ``chatapp.engine.factory.create_backend``;
4. decode tokens/s of the OpenAI backend talking to ``python -m llama_cpp.server`` serving the
   same GGUF ÷ the in-process backend, same threads, alternated (the HTTP path's overhead).
   ``--threads`` defaults to 1: on a busy 2-core machine llama.cpp's OpenMP threads spin-wait
   for each other and 2-thread decode rates swing 30x from run to run, which would drown the
   difference being measured.

``--only download,resume,load,decode`` runs some phases. Prints a table and writes
benchmarks/results/models.json (phases not run keep their previous figures).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHATAPP_HOME", tempfile.mkdtemp(prefix="chatapp-bench-"))
os.environ["HF_HUB_OFFLINE"] = "1"  # as chatapp's CLI runs; pull must switch it off itself
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

ROUNDS = 5
REPO, FILE = "bench-org/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_1.gguf"
LINK_RATE = 100e6  # bytes/s: a fast home connection (800 Mbit/s)
DECODE_TOKENS = 96
DECODE_ROUNDS = 5
PHASES = ("download", "resume", "load", "decode")
STORY = "Write a long, detailed story about a dragon who learns to cook. Use many paragraphs."


def _median(values: list[float]) -> float:
    return statistics.median(values)


def bench_downloads(hub, gguf: Path, rate: float | None) -> dict:
    from huggingface_hub import constants, hf_hub_download

    from chatapp.models.download import pull_model
    from chatapp.models.registry import remove_model

    hub.rate_limit = rate
    size = gguf.stat().st_size
    ours, plain = [], []
    scratch = Path(tempfile.mkdtemp(prefix="hf-plain-"))
    for _ in range(ROUNDS):
        started = time.perf_counter()
        model = pull_model(REPO)
        ours.append(time.perf_counter() - started)
        remove_model(model.name)

        constants.HF_HUB_OFFLINE = False  # plain huggingface-hub, as a script would run it
        started = time.perf_counter()
        hf_hub_download(REPO, FILE, local_dir=scratch, endpoint=hub.endpoint)
        plain.append(time.perf_counter() - started)
        constants.HF_HUB_OFFLINE = True
        shutil.rmtree(scratch)
    hub.rate_limit = None
    ours_mb_s = size / _median(ours) / 1e6
    plain_mb_s = size / _median(plain) / 1e6
    return {
        "file_bytes": size,
        "server_rate_limit_bytes_per_s": rate,
        "chatapp_pull_s": ours,
        "hf_hub_download_s": plain,
        "chatapp_mb_per_s": round(ours_mb_s, 1),
        "hf_hub_download_mb_per_s": round(plain_mb_s, 1),
        "ratio": round(ours_mb_s / plain_mb_s, 3),
    }


def bench_resume(hub, gguf: Path) -> dict:
    from chatapp import paths
    from chatapp.models.download import pull_model
    from chatapp.models.hub import HubError
    from chatapp.models.registry import remove_model

    size = gguf.stat().st_size
    hub.drop_next_download(after_bytes=size // 2, then_fail=1)
    try:
        pull_model(REPO)
        raise RuntimeError("the interrupted pull unexpectedly succeeded")
    except HubError:
        pass
    [partial] = (paths.models_dir() / ".partial").glob("*.part")
    kept = partial.stat().st_size
    hub.reset_counters()
    started = time.perf_counter()
    model = pull_model(REPO)
    resumed_s = time.perf_counter() - started
    served = hub.bytes_served
    remove_model(model.name)
    refetched = served - (size - kept)
    return {
        "file_bytes": size,
        "kept_bytes": kept,
        "bytes_fetched_on_resume": served,
        "refetched_bytes": refetched,
        "refetched_fraction": round(refetched / kept, 5),
        "resume_s": round(resumed_s, 3),
    }


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def bench_load(settings) -> dict:
    from chatapp.engine.factory import create_backend

    times = []
    for _ in range(3):
        started = time.perf_counter()
        backend = create_backend(settings)
        times.append(time.perf_counter() - started)
        backend.close()
    return {"load_s": [round(t, 3) for t in times], "median_load_s": round(_median(times), 3)}


def _decode_rate(backend) -> tuple[float, int]:
    from chatapp.domain import ChatMessage, DoneEvent, GenerationParams

    params = GenerationParams(max_tokens=DECODE_TOKENS, temperature=0.8, seed=42)
    messages = [ChatMessage("user", STORY)]
    done = None
    for event in backend.stream_chat(messages, params):
        if isinstance(event, DoneEvent):
            done = event
    assert done is not None and done.error is None, done
    return done.stats.decode_tokens_per_s, done.stats.completion_tokens


def bench_decode(settings, gguf: Path) -> dict:
    from chatapp.engine.factory import create_backend
    from chatapp.engine.openai import OpenAIBackend
    from tests.support.llama_server import LlamaServer

    threads = settings.model.n_threads
    local = create_backend(settings)
    with LlamaServer(gguf, n_ctx=settings.model.n_ctx, n_threads=threads) as server:
        remote = OpenAIBackend(server.base_url)
        _decode_rate(remote)  # warm both: first decodes build llama.cpp's compute graphs
        _decode_rate(local)
        local_rates, remote_rates, counts = [], [], []
        for _ in range(DECODE_ROUNDS):
            rate, n = _decode_rate(local)
            local_rates.append(rate)
            rate, m = _decode_rate(remote)
            remote_rates.append(rate)
            counts.append((n, m))
            _say(f"decode: in-process {local_rates[-1]:.1f}, http {remote_rates[-1]:.1f} tok/s")
        remote.close()
    local.close()
    local_med, remote_med = _median(local_rates), _median(remote_rates)
    return {
        "threads": threads,
        "in_process_tok_s": [round(r, 1) for r in local_rates],
        "openai_backend_tok_s": [round(r, 1) for r in remote_rates],
        "completion_tokens": counts,
        "in_process_median_tok_s": round(local_med, 1),
        "openai_backend_median_tok_s": round(remote_med, 1),
        "http_ratio": round(remote_med / local_med, 3),
    }


def main() -> None:
    import argparse

    from chatapp.config import load_settings
    from chatapp.models.bundled import bundled_chat_model
    from tests.support.hub_server import HubServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PHASES), help="comma-separated phases")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (both sides)")
    args = parser.parse_args()
    phases = set(args.only.split(","))
    out = ROOT / "benchmarks" / "results" / "models.json"
    results: dict = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}

    gguf = bundled_chat_model()
    model = {"name": "smollm2-135m", "n_ctx": 2048, "n_threads": args.threads}
    settings = load_settings({"model": model})
    with HubServer() as hub:
        hub.add_file(REPO, FILE, gguf)
        os.environ["HF_ENDPOINT"] = hub.endpoint
        if "download" in phases:
            results["download_loopback"] = bench_downloads(hub, gguf, None)
            _say(f"download, loopback: {results['download_loopback']['ratio']}")
            results["download_link_100MBps"] = bench_downloads(hub, gguf, LINK_RATE)
            _say(f"download, 100 MB/s link: {results['download_link_100MBps']['ratio']}")
        if "resume" in phases:
            results["resume"] = bench_resume(hub, gguf)
    if "load" in phases:
        results["load"] = bench_load(settings)
    if "decode" in phases:
        results["decode"] = bench_decode(settings, gguf)
    missing = [k for k in ("download_loopback", "resume", "load", "decode") if k not in results]
    if missing:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"phases not measured yet: {', '.join(missing)}; wrote {out.relative_to(ROOT)}")
        return

    loop, link = results["download_loopback"], results["download_link_100MBps"]
    rows = [
        (
            "pull ÷ hf_hub_download, loopback",
            f"{loop['chatapp_mb_per_s']} vs {loop['hf_hub_download_mb_per_s']} MB/s",
            f"{loop['ratio']:.3f}",
            "≥ 0.95",
        ),
        (
            "pull ÷ hf_hub_download, 100 MB/s link",
            f"{link['chatapp_mb_per_s']} vs {link['hf_hub_download_mb_per_s']} MB/s",
            f"{link['ratio']:.3f}",
            "≥ 0.95",
        ),
        (
            "resume: re-fetched ÷ already on disk",
            f"{results['resume']['refetched_bytes']} of {results['resume']['kept_bytes']} B",
            f"{results['resume']['refetched_fraction']:.4f}",
            "≤ 0.01",
        ),
        ("bundled model load (factory)", f"{results['load']['median_load_s']} s", "", ""),
        (
            "decode tok/s: OpenAI backend ÷ in-process",
            f"{results['decode']['openai_backend_median_tok_s']} vs "
            f"{results['decode']['in_process_median_tok_s']} tok/s",
            f"{results['decode']['http_ratio']:.3f}",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'figures':<28} {'ratio':>7}  target")
    for name, figures, ratio, target in rows:
        print(f"{name:<{width}}  {figures:<28} {ratio:>7}  {target}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

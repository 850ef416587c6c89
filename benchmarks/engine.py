"""Engine benchmark: the in-process llama.cpp backend against bare llama-cpp-python, side by side.

Same GGUF (the bundled SmolLM2-135M Q4_1), same threads, one run:

1. decode tokens/s through chatapp's streaming path ÷ a bare llama-cpp-python ``generate`` loop
   over the same prompt tokens, alternated several times, medians compared, and token for token
   in lockstep — both for the engine alone (LlamaCppBackend.stream_chat) and for a whole turn
   through ChatSession with durable streaming into a real SQLite store (the reply saved as it
   grows; target ≥ 0.97 for the session);
2. time to first token on turn 10 of a conversation (ChatSession + a real SQLite store in a temp
   CHATAPP_HOME) ÷ the same full prompt with a cold KV cache (target ≤ 0.15), and the prompt
   tokens evaluated on that warm turn vs the tokens that are new in it (target ≤ new + 16);
3. peak RSS of a fresh process that loads the bundled model and answers once;
4. load time of the bundled model (fresh process, and with llama_cpp already imported).

Prints a table and writes benchmarks/results/engine.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHATAPP_HOME", tempfile.mkdtemp(prefix="chatapp-bench-"))

QUICK = "--quick" in sys.argv  # a smoke run: fewer rounds and tokens (numbers not meaningful)
ROUNDS = 2 if QUICK else 7
DECODE_TOKENS = 32 if QUICK else 128
REPEATS = 1 if QUICK else 3
STORY = "Write a long, detailed story about a dragon who learns to cook. Use many paragraphs."
QUESTIONS = [
    "What is the capital of France?",
    "Name three animals that live in the sea.",
    "How many legs does a spider have?",
    "What colour is the sky on a clear day?",
    "Give me a synonym for happy.",
    "What is two plus five?",
    "Which planet is closest to the sun?",
    "What do bees make?",
    "Name a fruit that is yellow.",
    "Summarize our conversation in one sentence.",
]


def bare_llama(path: Path, n_ctx: int, n_threads: int, n_gpu_layers: int, seed: int):
    """A plain llama_cpp.Llama with the same settings as chatapp's backend."""
    import llama_cpp

    from chatapp.engine.llama_loading import cpu_has_amx, model_params_hook

    # Same buffer types as chatapp (AMX buffers crash llama.cpp on these virtual machines).
    with model_params_hook(lambda f, t: None, use_extra_buffers=not cpu_has_amx()):
        return llama_cpp.Llama(
            str(path),
            n_ctx=n_ctx,
            n_batch=512,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_gpu_layers=n_gpu_layers,
            seed=seed,
            verbose=False,
        )


def bare_decode(llm, tokens: list[int], n_tokens: int, params) -> float:
    """Decode tokens/s of a bare generate loop: same sampler settings, exactly n_tokens."""
    llm.set_seed(params.seed)
    first = last = 0.0
    count = 0
    for _ in llm.generate(
        tokens,
        top_k=params.top_k,
        top_p=params.top_p,
        min_p=params.min_p,
        temp=params.temperature,
        repeat_penalty=params.repeat_penalty,
    ):
        last = time.perf_counter()
        count += 1
        if count == 1:
            first = last
        if count >= n_tokens:
            break
    return (count - 1) / (last - first)


class TimedGenerate:
    """Wraps llama-cpp-python's generate() on chatapp's Llama and sums the CPU time the calling
    thread spends outside it between tokens: chatapp's own per-token work (CPU time, so being
    descheduled on a busy machine does not count)."""

    def __init__(self, llm) -> None:
        self.real = llm.generate
        self.outside_cpu_s = 0.0
        self.gaps = 0
        self.handed = 0
        llm.generate = self

    def __call__(self, *args, **kwargs):
        inner = self.real(*args, **kwargs)
        try:
            handed_out: float | None = None
            while True:
                if handed_out is not None:
                    self.outside_cpu_s += time.thread_time() - handed_out
                    self.gaps += 1
                try:
                    token = next(inner)
                except StopIteration:
                    return
                handed_out = time.thread_time()
                self.handed += 1
                yield token
        finally:
            inner.close()


def chatapp_decode(backend, messages, params, timer: TimedGenerate) -> tuple[float, int, float]:
    """(decode tokens/s, tokens, chatapp's own CPU microseconds per token) of one reply."""
    from chatapp.domain import DoneEvent

    timer.outside_cpu_s, timer.gaps = 0.0, 0
    for event in backend.stream_chat(messages, params):
        if isinstance(event, DoneEvent):
            stats = event.stats
    overhead_us = timer.outside_cpu_s / max(1, timer.gaps) * 1e6
    return stats.decode_tokens_per_s, stats.completion_tokens, overhead_us


def interleaved_round(
    make_stream, is_done, skip, bare, tokens, params, timer
) -> tuple[float, float]:
    """Decode tokens/s of one chatapp stream and of the bare loop advanced in lockstep, token for
    token, so both see the same machine load (other processes come and go within a second).
    ``skip`` events are read untimed first (the prompt and first token)."""
    bare.set_seed(params.seed)
    bare_tokens = bare.generate(
        tokens,
        top_k=params.top_k,
        top_p=params.top_p,
        min_p=params.min_p,
        temp=params.temperature,
        repeat_penalty=params.repeat_penalty,
    )
    timer.handed = 0
    stream = iter(make_stream())
    for _ in range(skip):
        event = next(stream)
    start_chat = timer.handed
    bare_count = 0
    while bare_count < start_chat:
        next(bare_tokens)
        bare_count += 1
    chat_s = bare_s = 0.0
    while not is_done(event):
        started = time.perf_counter()
        event = next(stream)
        chat_s += time.perf_counter() - started
        started = time.perf_counter()
        while bare_count < timer.handed:
            next(bare_tokens)
            bare_count += 1
        bare_s += time.perf_counter() - started
    for _ in stream:  # let the session finish storing the reply
        pass
    bare_tokens.close()
    decoded = timer.handed - start_chat
    return decoded / chat_s, (bare_count - start_chat) / bare_s


def session_turns(backend, params):
    """Fresh one-turn conversations through ChatSession with durable streaming into a real
    store: each call streams a whole turn (prepare, store, stream, save as it grows, finish)."""
    from chatapp import paths
    from chatapp.session import ChatSession, TurnRequest
    from chatapp.storage import ConversationStore

    store = ConversationStore(paths.database_path())

    def turn():
        session = ChatSession(backend, store, params=params)
        return session.send(TurnRequest(STORY))

    return store, turn


def measure_decode(backend, path: Path) -> dict:
    from chatapp.domain import ChatMessage, GenerationParams

    messages = [ChatMessage("user", STORY)]
    params = GenerationParams(max_tokens=DECODE_TOKENS, seed=7)
    tokens = backend.tokenize_prompt(backend.format_chat(messages))
    bare = bare_llama(path, backend.n_ctx, backend.n_threads, backend.n_gpu_layers, seed=7)
    chat_rates, bare_rates, counts, overheads = [], [], [], []
    timer = TimedGenerate(backend.llama)
    chatapp_decode(backend, messages, params, timer)  # warm both (page cache, first-decode setup)
    bare_decode(bare, tokens, 16, params)
    for i in range(ROUNDS):
        order = ("chat", "bare") if i % 2 == 0 else ("bare", "chat")
        for which in order:
            if which == "chat":
                rate, produced, overhead = chatapp_decode(backend, messages, params, timer)
                chat_rates.append(rate)
                counts.append(produced)
                overheads.append(overhead)
            else:
                n = counts[-1] + 1 if counts else DECODE_TOKENS
                bare_rates.append(bare_decode(bare, tokens, n, params))
    from chatapp.domain import DoneEvent
    from chatapp.session import TurnFinished

    lockstep = [
        interleaved_round(
            lambda: backend.stream_chat(messages, params),
            lambda e: isinstance(e, DoneEvent),
            1,
            bare,
            tokens,
            params,
            timer,
        )
        for _ in range(ROUNDS)
    ]
    lock_ratios = [chat / bare_rate for chat, bare_rate in lockstep]
    store, turn = session_turns(backend, params)
    session_lockstep = [
        interleaved_round(
            turn, lambda e: isinstance(e, TurnFinished), 2, bare, tokens, params, timer
        )
        for _ in range(ROUNDS)
    ]
    saves = store._conn.query(
        "SELECT COUNT(*) AS n FROM messages WHERE role = 'assistant' AND status = 'complete'"
    )[0]["n"]
    store.close()
    session_ratios = [chat / bare_rate for chat, bare_rate in session_lockstep]
    bare.close()
    backend.llama.generate = timer.real
    default_threads = max(1, (os.cpu_count() or 2) // 2)
    default = bare_llama(path, backend.n_ctx, default_threads, backend.n_gpu_layers, seed=7)
    default_rates = [bare_decode(default, tokens, DECODE_TOKENS, params) for _ in range(REPEATS)]
    default.close()
    chat_med, bare_med = statistics.median(chat_rates), statistics.median(bare_rates)
    return {
        "threads": backend.n_threads,
        "tokens_per_run": statistics.median(counts),
        "chatapp_tokens_per_s": round(chat_med, 1),
        "bare_tokens_per_s": round(bare_med, 1),
        "ratio": round(chat_med / bare_med, 3),
        "chatapp_runs": [round(r, 1) for r in chat_rates],
        "bare_runs": [round(r, 1) for r in bare_rates],
        "lockstep_ratio": round(statistics.median(lock_ratios), 3),
        "lockstep_ratios": [round(r, 3) for r in lock_ratios],
        "lockstep_runs": [[round(c, 1), round(b, 1)] for c, b in lockstep],
        "session_lockstep_ratio": round(statistics.median(session_ratios), 3),
        "session_lockstep_ratios": [round(r, 3) for r in session_ratios],
        "session_lockstep_runs": [[round(c, 1), round(b, 1)] for c, b in session_lockstep],
        "session_replies_stored": saves,
        "chatapp_overhead_us_per_token": round(statistics.median(overheads), 1),
        # Share of a token's time at the bare loop's speed: 1 - share estimates the ratio on an
        # idle machine, where timings are not disturbed by other processes.
        "chatapp_overhead_share": round(statistics.median(overheads) * bare_med / 1e6, 5),
        "llama_cpp_python_default_threads": default_threads,
        "bare_default_threads_tokens_per_s": round(statistics.median(default_rates), 1),
    }


def measure_warm_turn(backend) -> dict:
    """Ten turns through ChatSession; the 10th turn's TTFT vs the same prompt cold."""
    import llama_cpp

    from chatapp import paths
    from chatapp.domain import DoneEvent, GenerationParams
    from chatapp.session import ChatSession, TurnRequest, consume
    from chatapp.storage import ConversationStore

    store = ConversationStore(paths.database_path())
    session = ChatSession(
        backend,
        store,
        system_prompt="You are a helpful, concise assistant.",
        params=GenerationParams(max_tokens=96, seed=3),
    )
    turns: list[tuple] = []
    cache_before_turn10: list[int] = []
    for number, question in enumerate(QUESTIONS, start=1):
        if number == len(QUESTIONS):
            cache_before_turn10 = backend.llama._input_ids.tolist()
        perf_before = llama_cpp.llama_perf_context(backend.llama.ctx)
        finished = consume(session.send(TurnRequest(question)))
        plan = finished.plan
        perf_after = llama_cpp.llama_perf_context(backend.llama.ctx)
        perf_prompt = perf_after.n_p_eval - perf_before.n_p_eval
        turns.append((plan, finished, perf_prompt))
    store.close()
    _, done9, _ = turns[-2]
    plan10, done10, perf10 = turns[-1]
    warm = done10.stats
    new_tokens = warm.prompt_tokens - (done9.stats.prompt_tokens + done9.stats.completion_tokens)
    turn10_params = GenerationParams(max_tokens=4, seed=3)

    def first_token_s(messages) -> tuple[float, int]:
        for event in backend.stream_chat(messages, turn10_params):
            if isinstance(event, DoneEvent):
                return event.stats.ttft_s, event.stats.cached_tokens
        raise RuntimeError("stream ended without a DoneEvent")

    # More samples of the same warm turn: put the KV cache back exactly as it was before turn 10
    # (untimed), then ask turn 10 again. Cold: an empty KV cache, the whole prompt evaluated.
    warm_ttfts, cold_ttfts = [warm.ttft_s], []
    for _ in range(REPEATS):
        backend.llama.reset()
        backend.llama.eval(cache_before_turn10)
        warm_ttfts.append(first_token_s(plan10.messages)[0])
        backend.llama.reset()
        ttft, cold_cached = first_token_s(plan10.messages)
        cold_ttfts.append(ttft)
    warm_s, cold = statistics.median(warm_ttfts), statistics.median(cold_ttfts)
    return {
        "turns": len(turns),
        "prompt_tokens_turn10": warm.prompt_tokens,
        "cached_tokens_turn10": warm.cached_tokens,
        "evaluated_tokens_turn10": warm.evaluated_prompt_tokens,
        "llama_perf_prompt_tokens_turn10": perf10,
        "new_tokens_turn10": new_tokens,
        "ttft_warm_s": round(warm_s, 4),
        "ttft_cold_s": round(cold, 4),
        "ttft_warm_runs": [round(t, 4) for t in warm_ttfts],
        "ttft_cold_runs": [round(t, 4) for t in cold_ttfts],
        "cold_cached_tokens": cold_cached,
        "ratio": round(warm_s / cold, 3),
        "cached_per_turn": [t[1].stats.cached_tokens for t in turns],
        "evaluated_per_turn": [t[1].stats.evaluated_prompt_tokens for t in turns],
    }


CHILD = r"""
import json, os, resource, sys, time
started = time.perf_counter()
from chatapp.config import load_settings
from chatapp.engine.factory import create_backend
from chatapp.domain import ChatMessage, GenerationParams
backend = create_backend(load_settings())
loaded = time.perf_counter() - started
list(backend.stream_chat([ChatMessage("user", "Say hello.")], GenerationParams(max_tokens=32)))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"load_s": loaded, "peak_rss_bytes": rss}))
"""


def measure_process() -> dict:
    """Load time and peak RSS in fresh processes (median of 3)."""
    runs = []
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, "-c", CHILD],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "fresh_process_load_s": round(statistics.median(r["load_s"] for r in runs), 3),
        "peak_rss_mib": round(statistics.median(r["peak_rss_bytes"] for r in runs) / 2**20, 1),
    }


def measure_load(path: Path) -> float:
    from chatapp.config import ModelSettings
    from chatapp.engine.llama_cpp import LlamaCppBackend

    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        backend = LlamaCppBackend(path, ModelSettings())
        times.append(time.perf_counter() - started)
        backend.close()
    return round(statistics.median(times), 3)


def main() -> dict:
    from chatapp.config import ModelSettings
    from chatapp.engine.llama_cpp import LlamaCppBackend
    from chatapp.models.bundled import bundled_chat_model

    path = bundled_chat_model()
    load_before = os.getloadavg()[0]
    load_s = measure_load(path)
    # No warm-resume cache here: the cold TTFT below must read its prompt cold
    # (benchmarks/warm_resume.py measures the cache).
    backend = LlamaCppBackend(path, ModelSettings(kv_cache_mb=0), name="smollm2-135m")
    backend.model_sha256()  # hash now, so the background hashing overlaps no measurement
    decode = measure_decode(backend, path)
    warm = measure_warm_turn(backend)
    backend.close()
    process = measure_process()
    results = {
        "model": path.name,
        # Other processes competing for the cores make every timing here noisier; say how busy.
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "decode": decode,
        "warm_turn": warm,
        "load_s_imported": load_s,
        **process,
        "targets": {"decode_ratio_min": 0.97, "ttft_ratio_max": 0.15, "evaluated_max": "new + 16"},
        "pass": {
            "decode": decode["lockstep_ratio"] >= 0.97,
            "decode_session": decode["session_lockstep_ratio"] >= 0.97,
            "ttft": warm["ratio"] <= 0.15,
            "evaluated": warm["evaluated_tokens_turn10"] <= warm["new_tokens_turn10"] + 16,
        },
    }
    rows = [
        ("decode tok/s: chatapp stream_chat", f"{decode['chatapp_tokens_per_s']}"),
        ("decode tok/s: bare llama-cpp-python generate", f"{decode['bare_tokens_per_s']}"),
        ("  ratio of medians, alternated runs", f"{decode['ratio']}"),
        ("  ratio, token-for-token lockstep (target ≥ 0.97)", f"{decode['lockstep_ratio']}"),
        (
            "  ratio, whole turns via ChatSession + durable streaming, lockstep (≥ 0.97)",
            f"{decode['session_lockstep_ratio']}",
        ),
        (
            "  chatapp's own CPU per token (µs, share)",
            f"{decode['chatapp_overhead_us_per_token']} ({decode['chatapp_overhead_share']:.2%})",
        ),
        (
            f"  bare at llama-cpp-python's default {decode['llama_cpp_python_default_threads']} "
            "thread(s)",
            f"{decode['bare_default_threads_tokens_per_s']}",
        ),
        ("TTFT turn 10 warm (s)", f"{warm['ttft_warm_s']}"),
        ("TTFT same prompt cold (s)", f"{warm['ttft_cold_s']}"),
        ("  ratio (target ≤ 0.15)", f"{warm['ratio']}"),
        (
            "turn 10 prompt: evaluated / new tokens",
            f"{warm['evaluated_tokens_turn10']} / {warm['new_tokens_turn10']} "
            f"(of {warm['prompt_tokens_turn10']})",
        ),
        ("peak RSS, bundled model (MiB)", f"{results['peak_rss_mib']}"),
        ("load time, fresh process (s)", f"{results['fresh_process_load_s']}"),
        ("load time, llama_cpp imported (s)", f"{load_s}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"engine benchmark — {path.name}, {decode['threads']} threads, load average "
        f"{results['load_average_1min'][0]} → {results['load_average_1min'][1]}"
    )
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    out = ROOT / "benchmarks" / "results" / ("engine-quick.json" if QUICK else "engine.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    return results


if __name__ == "__main__":
    main()

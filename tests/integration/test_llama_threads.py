"""llama.cpp's threads fit the cores that are free: the bundled model through real llama.cpp in
processes held to two cores, one of them kept busy by another process (a busy loop).

What is asserted is the thread count and that the reply finished, never a time: the machine
running the tests may be busy with anything else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity"),
]

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def two_cpus() -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two cores")
    return cpus[:2]


@contextmanager
def busy_core(cpu: int) -> Iterator[None]:
    """Another program spinning on ``cpu`` for as long as the block runs."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {cpu})
        time.sleep(0.3)
        yield
    finally:
        busy.kill()
        busy.wait()


def run_on(cpus: list[int], args: list[str], home: Path, **env: str) -> str:
    """Run ``args`` held to ``cpus`` (so llama.cpp's threads share them with the busy loop)."""
    result = subprocess.run(
        args,
        env={**os.environ, "CHATAPP_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.sched_setaffinity(0, set(cpus)),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def remembered(home: Path) -> dict:
    (entry,) = json.loads((home / "cache" / "threads.json").read_text()).values()
    return entry


def test_ask_starts_with_the_core_another_program_left(chatapp_home: Path) -> None:
    cpus = two_cpus()
    with busy_core(cpus[0]):
        out = run_on(
            cpus,
            [sys.executable, "-m", "chatapp", "ask", "--json", "-n", "48", "--seed", "3", PROMPT],
            chatapp_home,
        )
    reply = json.loads(out)
    assert reply["finish_reason"] in ("stop", "length")
    assert reply["stats"]["completion_tokens"] > 0
    memory = remembered(chatapp_home)
    assert memory["settled"] == 1  # of the two cores this process may use
    assert set(memory["rates"]) == {"1"}


# A reply in a child process whose probe says how many cores are free when the reply starts
# (argv: n_threads or 0, prompt, max tokens, free cores).
CHILD = textwrap.dedent(
    """
    import json, sys
    import llama_cpp
    from chatapp.config import ModelSettings
    from chatapp.domain import ChatMessage, DoneEvent, GenerationParams
    from chatapp.engine.llama_cpp import LlamaCppBackend
    from chatapp.models.bundled import bundled_chat_model

    class Probe:
        def free_cores(self): return float(sys.argv[4])
        def mark(self): pass

    n_threads = int(sys.argv[1]) or None
    backend = LlamaCppBackend(
        bundled_chat_model(), ModelSettings(n_ctx=1024, n_threads=n_threads, kv_cache_mb=0),
        cpu_probe=Probe(),
    )
    params = GenerationParams(max_tokens=int(sys.argv[3]), temperature=0.7, seed=1)
    events = backend.stream_chat([ChatMessage("user", sys.argv[2])], params)
    done = [e for e in events if isinstance(e, DoneEvent)][0]
    ctx = backend.llama._ctx.ctx
    print(json.dumps({
        "finish": done.finish_reason,
        "tokens": done.stats.completion_tokens,
        "history": backend.threads.last_reply,
        "llama_threads": [llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)],
        "ceiling": backend.n_threads,
    }))
    backend.close()
    """
)


def test_a_reply_that_collapses_drops_a_thread_and_finishes(chatapp_home: Path) -> None:
    cpus = two_cpus()
    with busy_core(cpus[0]):
        # Both cores look free when the reply starts: only its decode speed can bring it down.
        out = run_on(cpus, [sys.executable, "-c", CHILD, "0", PROMPT, "64", "2"], chatapp_home)
    result = json.loads(out)
    assert result["finish"] in ("stop", "length") and result["tokens"] >= 24
    assert result["ceiling"] == 2
    assert result["history"][0] == 2 and result["history"][-1] == 1, result
    assert result["llama_threads"] == [1, 1]  # what llama.cpp's context really uses now
    assert remembered(chatapp_home)["settled"] == 1


def test_explicit_threads_are_obeyed_where_the_fit_would_take_fewer(chatapp_home: Path) -> None:
    cpus = two_cpus()
    fitted = json.loads(
        run_on(cpus, [sys.executable, "-c", CHILD, "0", PROMPT, "4", "0.2"], chatapp_home)
    )
    assert fitted["history"] == [1] and fitted["llama_threads"] == [1, 1]
    fixed = json.loads(
        run_on(cpus, [sys.executable, "-c", CHILD, "2", PROMPT, "4", "0.2"], chatapp_home)
    )
    assert fixed["finish"] in ("stop", "length") and fixed["tokens"] > 0
    assert fixed["history"] == [2] and fixed["llama_threads"] == [2, 2]


def test_the_thread_count_does_not_change_a_seeded_reply(bundled_gguf: Path) -> None:
    """A seed reproduces a reply whatever threads the machine allowed each time (llama.cpp
    splits each product by rows, so every thread count computes the same sums)."""
    from chatapp.config import ModelSettings
    from chatapp.domain import ChatMessage, GenerationParams, TokenEvent
    from chatapp.engine.llama_cpp import LlamaCppBackend

    texts = []
    for threads in (1, 2):
        backend = LlamaCppBackend(
            bundled_gguf, ModelSettings(n_ctx=512, n_threads=threads, kv_cache_mb=0)
        )
        try:
            params = GenerationParams(max_tokens=8, temperature=0.7, seed=5)
            events = backend.stream_chat([ChatMessage("user", PROMPT)], params)
            texts.append("".join(e.text for e in events if isinstance(e, TokenEvent)))
        finally:
            backend.close()
    assert texts[0] and texts[0] == texts[1]


@pytest.mark.parametrize("n_threads", [None, 1])
def test_the_chat_ui_loads_the_same_fitted_engine_as_ask(n_threads: int | None) -> None:
    """The chat's model slot opens the backend through the factory ``chatapp ask`` uses, so its
    replies get the same thread fit, and its Threads setting is obeyed the same way."""
    from chatapp.config import load_settings
    from chatapp.engine.factory import create_backend
    from chatapp.engine.llama_cpp import LlamaCppBackend
    from chatapp.ui.model_loading import ModelSlot

    settings = load_settings({"model": {"n_ctx": 512, "n_threads": n_threads}})
    slot = ModelSlot()
    try:
        assert slot.load(settings, lambda fraction, text: None) is None
        ui, ask = slot.backend, create_backend(settings)
        try:
            for backend in (ui, ask):
                assert isinstance(backend, LlamaCppBackend)
                assert (backend.threads.fit is None) == (n_threads is not None)
                assert backend.threads.initial == (n_threads or backend.n_threads)
        finally:
            ask.close()
    finally:
        slot.close()

"""Overhead of the tool loop: the time a turn with tool calls spends outside the model (gate,
registry, stored rows, budget) ÷ the time the model spends, through the real session with the
bundled SmolLM2 in-process, real SQLite and the real built-ins; calls constrained by the
grammar and forced on the first step (tool_choice "required"). Target ≤ 0.05.

    .venv/bin/python benchmarks/tools_loop.py [--turns 10] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from chatapp.config import ModelSettings
from chatapp.domain import CancelToken, ChatMessage, GenerationParams, StreamEvent
from chatapp.engine.llama_cpp import LlamaCppBackend
from chatapp.models.bundled import bundled_chat_model
from chatapp.session import ChatSession, TurnRequest, consume
from chatapp.session.tool_loop import ToolUse
from chatapp.storage import ConversationStore
from chatapp.tools.approval import ToolGate
from chatapp.tools.builtin_tools import ClockTools, MathTools
from chatapp.tools.registry import ToolRegistry

RESULTS = Path(__file__).parent / "results" / "tools_loop.json"
PROMPTS = [
    "What is 17 times 23?",
    "What time is it now?",
    "Compute 2 to the power of 20.",
    "What is today's date?",
    "How much is 1234 plus 5678?",
]


class TimedBackend:
    """The real backend with the seconds spent inside ``stream_chat`` added up."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self._backend = backend
        self.model_s = 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self._backend, name)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[StreamEvent]:
        events = self._backend.stream_chat(messages, params, cancel)
        while True:
            started = time.perf_counter()
            try:
                event = next(events)
            except StopIteration:
                self.model_s += time.perf_counter() - started
                return
            self.model_s += time.perf_counter() - started
            yield event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    backend = LlamaCppBackend(bundled_chat_model(), ModelSettings())
    timed = TimedBackend(backend)
    ratios, steps, calls = [], [], 0
    with tempfile.TemporaryDirectory() as folder:
        store = ConversationStore(Path(folder) / "bench.db")
        for i in range(args.turns):
            tools = ToolUse(ToolRegistry([ClockTools(), MathTools()]), ToolGate(), max_steps=3)
            params = GenerationParams(max_tokens=args.max_tokens, seed=i, temperature=0.2)
            session = ChatSession(timed, store, params=params, tools=tools)  # type: ignore[arg-type]
            request = TurnRequest(
                PROMPTS[i % len(PROMPTS)], tools=["clock", "math"], tool_choice="required"
            )
            timed.model_s = 0.0
            started = time.perf_counter()
            result = consume(session.send(request))
            total = time.perf_counter() - started
            outside = total - timed.model_s
            ratios.append(outside / timed.model_s)
            steps.append(result.steps)
            calls += len(result.tool_results)
            print(f"turn {i}: {result.steps} steps, {len(result.tool_results)} calls, "
                  f"model {timed.model_s:.2f} s, outside {outside * 1000:.1f} ms")  # fmt: skip
        store.close()
    backend.close()
    data = {
        "machine": platform.processor() or platform.machine(),
        "turns": args.turns,
        "calls": calls,
        "steps_median": statistics.median(steps),
        "outside_over_model_median": round(statistics.median(ratios), 4),
        "outside_over_model_max": round(max(ratios), 4),
        "target": 0.05,
    }
    RESULTS.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()

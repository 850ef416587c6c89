"""Valid-call rate of the bundled model: 40 prompts that need a tool (clock, calculator,
documents, an MCP-like notes server), each answered with the four tools offered, with and
without the constraining grammar, under tool_choice "auto" and "required".

A call is valid when it names an offered tool and its arguments parse and match the tool's JSON
schema (jsonschema); "right tool" is the share of prompts whose first call names the tool the
prompt needs. Results go to benchmarks/results/tools.json.

    .venv/bin/python benchmarks/tools.py [--limit N] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jsonschema

from chatapp.config import ModelSettings
from chatapp.domain import ChatMessage, GenerationParams, ToolCallEvent, ToolSpec
from chatapp.engine.llama_cpp import LlamaCppBackend
from chatapp.models.bundled import bundled_chat_model
from chatapp.tools.builtin_tools import ClockTools, MathTools

RESULTS = Path(__file__).parent / "results" / "tools.json"

TOOLS = [
    *ClockTools().specs(),
    *MathTools().specs(),
    ToolSpec(
        "documents.search",
        "Search the user's documents (collection 'notes') and return the passages that best "
        "match, each with its file and lines.",
        {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for."}},
            "required": ["query"],
            "additionalProperties": False,
        },
    ),
    ToolSpec(  # the shape an MCP server's tool has (title, enum, integer bounds)
        "notes.add",
        "Add a note to the user's notebook.",
        {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "body": {"type": "string"},
                "priority": {"type": "string", "enum": ["low", "normal", "high"]},
            },
            "required": ["title", "body"],
        },
    ),
]
PROMPTS: list[tuple[str, str]] = [
    *[
        ("clock.now", q)
        for q in (
            "What time is it right now?",
            "What is today's date?",
            "Which day of the week is it today?",
            "What's the current time zone here?",
            "Tell me the exact current time, please.",
            "Is it morning or evening now?",
            "What year is it?",
            "How many days are left in this month?",
            "What month is it currently?",
            "지금 몇 시예요?",
        )
    ],
    *[
        ("math.calculate", q)
        for q in (
            "What is 1234 * 5678?",
            "Calculate 2**64.",
            "What is the square root of 1764?",
            "Compute (17 + 25) * 3 / 7.",
            "How much is 15% of 2480?",
            "What is 987654321 divided by 12345?",
            "Calculate 3.75 * 19.2 - 4.1.",
            "What's 12 factorial divided by 10 factorial?",
            "Add 48213 and 99871.",
            "123 곱하기 456은 얼마인가요?",
        )
    ],
    *[
        ("documents.search", q)
        for q in (
            "Search my notes for the tax deadline.",
            "What do my documents say about the project budget?",
            "Find the meeting notes from last Tuesday in my files.",
            "Look up my notes on the React migration.",
            "What did I write about the dentist appointment?",
            "Search my documents for the wifi password.",
            "Find my notes about the Rust ownership chapter.",
            "Which of my files mention the landlord?",
            "Look in my documents for the recipe for kimchi stew.",
            "내 문서에서 회의록을 찾아 주세요.",
        )
    ],
    *[
        ("notes.add", q)
        for q in (
            "Add a note titled 'Groceries' saying buy milk and eggs.",
            "Make a note: call mom on Sunday.",
            "Save a high-priority note that the car needs an oil change.",
            "Write down a note titled 'Ideas' with body 'a chat app for tools'.",
            "Please note that the rent is due on the 1st.",
            "Create a note reminding me to renew my passport.",
            "Add a low priority note: read the Rust book chapter 4.",
            "Note down the book title 'Dune' for later.",
            "Jot down a note: team lunch Friday at noon.",
            "메모 추가해 줘: 내일 우유 사기.",
        )
    ],
]
SCHEMAS = {spec.name: spec.parameters for spec in TOOLS}


def run(
    backend: LlamaCppBackend, constrain: bool, choice: str, limit: int, max_tokens: int
) -> dict:
    made = valid = right = 0
    calls_total = invalid_calls = 0
    model_s = 0.0
    errors: list[str] = []
    for index, (expected, question) in enumerate(PROMPTS[:limit]):
        params = GenerationParams(
            temperature=0.7,
            max_tokens=max_tokens,
            seed=index,
            tools=TOOLS,
            tool_choice=choice,
            constrain_tools=constrain,
        )
        started = time.perf_counter()
        calls = [
            e.call
            for e in backend.stream_chat([ChatMessage("user", question)], params)
            if isinstance(e, ToolCallEvent)
        ]
        model_s += time.perf_counter() - started
        if not calls:
            continue
        made += 1
        right += calls[0].name == expected
        ok = True
        for call in calls:
            calls_total += 1
            problem = call.error
            if problem is None and call.name not in SCHEMAS:
                problem = f"no tool named {call.name}"
            if problem is None:
                try:
                    jsonschema.validate(call.arguments, SCHEMAS[call.name])
                except jsonschema.ValidationError as exc:
                    problem = exc.message
            if problem is not None:
                ok = False
                invalid_calls += 1
                errors.append(problem[:120])
        valid += ok
    n = min(limit, len(PROMPTS))
    return {
        "constrained": constrain,
        "tool_choice": choice,
        "prompts": n,
        "replies_with_calls": made,
        "calls": calls_total,
        "valid_call_rate": round((calls_total - invalid_calls) / calls_total, 3)
        if calls_total
        else None,
        "replies_all_calls_valid": valid,
        "right_tool_share": round(right / n, 3),
        "seconds": round(model_s, 1),
        "errors": errors[:10],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=len(PROMPTS))
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--constrained-only", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    path = bundled_chat_model()
    backend = LlamaCppBackend(path, ModelSettings(n_ctx=2048))
    rows = []
    try:
        for choice in ("required", "auto"):
            for constrain in (True,) if args.constrained_only else (True, False):
                row = run(backend, constrain, choice, args.limit, args.max_tokens)
                print(json.dumps(row, ensure_ascii=False), flush=True)
                rows.append(row)
    finally:
        backend.close()
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": path.name,
                "machine": platform.machine(),
                "max_tokens": args.max_tokens,
                "runs": rows,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()

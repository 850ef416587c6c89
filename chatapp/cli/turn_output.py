"""How a turn looks from the shell: the one printer behind ``chatapp ask`` and ``chatapp run``.

The reply streams to stdout as it arrives; everything else goes to stderr so a pipe gets only the
answer: the budget's notes before the reply, a thinking model's reasoning when asked for
(``--show-thinking``; otherwise only how long it thought), then an error line, a template's
parsed answer or validity note, and the sources with the citation check. ``--json`` prints one object instead.
Text from the model or documents that would drive the terminal (escape sequences, other control
characters) is shown escaped when stdout/stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from chatapp.terminal_text import safe_for_terminal

if TYPE_CHECKING:
    from chatapp.domain import CancelToken, ToolResult
    from chatapp.session import ChatSession, TurnRequest, TurnResult, TurnStarted
    from chatapp.session.turns import ToolCallFinished, ToolCallStarted


def _shown(text: str, stream: TextIO) -> str:
    return safe_for_terminal(text) if _is_terminal(stream) else text


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class TurnPrinter:
    """Prints one turn's events as they come (``stream``), or nothing until the JSON."""

    def __init__(self, *, stream: bool, show_thinking: bool = False) -> None:
        self.stream = stream
        self.show_thinking = show_thinking
        self._thinking = False
        self.out = sys.stdout
        self.err = sys.stderr
        self._ends_with_newline = True
        self._printed = False
        self._noted: set[str] = set()

    def note(self, text: str) -> None:
        if text in self._noted:
            return
        self._noted.add(text)
        print(f"note: {_shown(text, self.err)}", file=self.err)

    def on_tool(self, event: ToolCallStarted | ToolCallFinished) -> None:
        """A call folded into one line on stderr: ``▸ clock.now · 0.0 s`` (or why it did not
        run); the JSON object lists every call with its arguments and result."""
        from chatapp.session.turns import ToolCallStarted

        if not self.stream:
            return
        self._end_thinking()
        if self._printed and not self._ends_with_newline:
            self.out.write("\n")
            self.out.flush()
            self._ends_with_newline = True
        if isinstance(event, ToolCallStarted):
            return
        result = event.result
        status = "" if result.status == "ok" else f" · {result.status}"
        line = f"▸ {event.call.name} · {result.duration_s:.1f} s{status}"
        if result.status in ("denied", "error"):
            line += f": {result.content.splitlines()[0][:200] if result.content else ''}"
        print(_shown(line, self.err), file=self.err)

    def on_start(self, event: TurnStarted) -> None:
        for note in event.notes:
            self.note(note)

    def on_reasoning(self, text: str) -> None:
        if not self.stream or not self.show_thinking or not text:
            return
        if not self._thinking:
            self._thinking = True
            print("thinking:", file=self.err)
        self.err.write(_shown(text, self.err))
        self.err.flush()

    def _end_thinking(self) -> None:
        if self._thinking:
            self._thinking = False
            print("\n", file=self.err)

    def on_token(self, text: str) -> None:
        if not self.stream or not text:
            return
        self._end_thinking()
        self.out.write(_shown(text, self.out))
        self.out.flush()
        self._printed = True
        self._ends_with_newline = text.endswith("\n")

    def finish(self, result: TurnResult) -> None:
        """What follows the reply: a refusal's text, the closing newline, errors, checks."""
        if not self.stream:
            return
        self._end_thinking()
        if result.kind == "refusal":
            self.on_token(result.text)
        if result.reasoning and not self.show_thinking:
            seconds = result.stats.reasoning_s
            took = f" for {seconds:.1f} s" if seconds else ""
            self.note(f"the model thought{took} before answering (--show-thinking shows it)")
        if self._printed and not self._ends_with_newline:
            self.out.write("\n")
            self.out.flush()
        for note in result.notes:  # those added after the start (the others were printed)
            self.note(note)
        if result.error:
            print(f"error: {_shown(result.error, self.err)}", file=self.err)
        parsed = result.parsed
        if parsed is not None:
            if (
                parsed.valid
                and parsed.value != result.text.strip()
                and not isinstance(parsed.value, dict)
            ):
                print(f"answer: {_shown(str(parsed.value), self.err)}", file=self.err)
            elif not parsed.valid:
                name = result.request.template.name if result.request.template else "?"
                self.note(f"output not valid for template {name!r}: {parsed.error}")
        if result.sources:
            self._print_sources(result)

    def _print_sources(self, result: TurnResult) -> None:
        err = self.err
        report = result.citations
        cited = set(report.citations) if report is not None else set()
        print("\nsources:", file=err)
        for source in result.sources:
            where = source.location
            mark = "*" if source.n in cited else " "
            line = f" {mark}[{source.n}] {where}  (similarity {source.similarity:.2f})"
            print(_shown(line, err), file=err)
        if report is None:
            return
        if report.invalid_citations:
            numbers = ", ".join(f"[{n}]" for n in report.invalid_citations)
            print(f"warning: cited sources that were not given: {numbers}", file=err)
        for item in report.unsupported:
            why = item.get("reason") or f"support {item['support']:.2f}"
            print(_shown(f"unsupported ({why}): {item['text']}", err), file=err)


def stats_json(result: TurnResult) -> dict[str, Any]:
    stats = result.stats
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "ttft_s": round(stats.ttft_s, 4),
        "decode_tokens_per_s": round(stats.decode_tokens_per_s, 2),
        "cached_tokens": stats.cached_tokens,
        "dropped_messages": stats.dropped_messages,
    }


def ask_json(result: TurnResult) -> dict[str, Any]:
    """The ``chatapp ask --json`` object."""
    data: dict[str, Any] = {
        "text": result.text,
        "reasoning": result.reasoning or None,
        "kind": result.kind,
        "conversation_id": result.conversation_id,
        "message_id": result.message.id if result.message is not None else None,
        "model": result.model,
        "finish_reason": result.finish_reason,
        "stats": stats_json(result),
    }
    if result.request.collection is not None:
        report = result.citations
        data.update(
            grounded=result.kind == "reply" and bool(result.sources),
            sources=[s.to_dict() for s in result.sources],
            retrieval=result.retrieval,
            citations=report.citations if report else [],
            invalid_citations=report.invalid_citations if report else [],
            unsupported=report.unsupported if report else [],
        )
    if result.request.template is not None:
        data["template"] = template_json(result)
    if result.notes:
        data["notes"] = result.notes
    if result.tool_results:
        data["steps"] = result.steps
        data["tool_calls"] = [tool_json(result, r) for r in result.tool_results]
    return data


def tool_json(result: TurnResult, tool: ToolResult) -> dict[str, Any]:
    """One call of a turn as ``ask --json`` lists it."""
    arguments = next((c.arguments for c in result.tool_calls if c.id == tool.call_id), {})
    return {
        "id": tool.call_id,
        "name": tool.name,
        "arguments": arguments,
        "status": tool.status,
        "duration_s": round(tool.duration_s, 3),
        "result": tool.content,
    }


def template_json(result: TurnResult) -> dict[str, Any]:
    parsed = result.parsed
    plan = result.plan
    return {
        "name": result.request.template.name if result.request.template else None,
        "output": parsed.answer if parsed else result.text,
        "parsed": parsed.value if parsed else None,
        "reasoning": parsed.reasoning if parsed else None,
        "valid": parsed.valid if parsed else False,
        "error": parsed.error if parsed else result.error,
        "examples": plan.shown_examples if plan else 0,
        "dropped_examples": plan.dropped_examples if plan else 0,
        "truncated_input": plan.truncated_input if plan else False,
    }


def run_json(result: TurnResult) -> dict[str, Any]:
    """The ``chatapp run --json`` object."""
    template = template_json(result)
    stats = result.stats.to_dict()
    stats.update(
        examples=template["examples"],
        dropped_examples=template["dropped_examples"],
        truncated_input=template["truncated_input"],
        constrained=result.constrained,
        finish_reason=result.finish_reason,
    )
    data: dict[str, Any] = {
        "template": template["name"],
        "output": template["output"],
        "parsed": template["parsed"],
        "reasoning": template["reasoning"],
        "thinking": result.reasoning or None,
        "valid": template["valid"],
        "error": template["error"],
        "raw": result.text,
        "model": result.model,
        "conversation_id": result.conversation_id,
        "message_id": result.message.id if result.message is not None else None,
        "stats": stats,
    }
    if result.request.collection is not None:
        data.update(sources=[s.to_dict() for s in result.sources], retrieval=result.retrieval)
    return data


def print_turn(
    session: ChatSession,
    request: TurnRequest,
    *,
    stream: bool,
    show_thinking: bool = False,
    cancel: CancelToken | None = None,
) -> TurnResult:
    """Run ``request`` in ``session`` and print it (see the module docstring).

    Ctrl+C (and SIGTERM/SIGHUP, see chatapp.cli.signals) stops the reply: the session keeps the
    partial reply as interrupted and the interrupt reaches main(), which sets the exit code."""
    from chatapp.session import consume

    printer = TurnPrinter(stream=stream, show_thinking=show_thinking)
    try:
        result = consume(
            session.send(request, cancel),
            on_start=printer.on_start,
            on_token=printer.on_token,
            on_reasoning=printer.on_reasoning,
            on_tool=printer.on_tool,
        )
    except KeyboardInterrupt:
        if stream and printer._printed and not printer._ends_with_newline:
            sys.stdout.write("\n")
        raise
    printer.finish(result)
    return result


def print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, ensure_ascii=False))

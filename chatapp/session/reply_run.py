"""One reply of a turn, from the prepared prompt to the stored answer: the steps it streams
(more than one when the model calls tools), the rows it writes as it goes, and the checks of
the answer (a template's output spec, a grounded reply's citations)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatapp.context import fit_tool_results
from chatapp.domain import (
    CancelToken,
    ChatMessage,
    DoneEvent,
    GenerationParams,
    ReasoningEvent,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
)
from chatapp.engine.base import Backend
from chatapp.engine.kv_state_files import KeepsStates
from chatapp.errors import ChatappError
from chatapp.session.deletion import state_owner
from chatapp.session.preparation import PreparedTurn
from chatapp.session.reply_writer import ReplyWriter
from chatapp.session.tool_loop import ToolRunner, ToolUse, step_messages
from chatapp.session.turns import TurnEvent, TurnFinished, TurnResult, TurnStarted

if TYPE_CHECKING:
    from chatapp.retrieval.search.grounding import DocumentRetriever
    from chatapp.storage import ConversationStore, Message


@dataclass
class ReplyRun:
    """Streams and stores the reply to one prepared turn (see the module docstring)."""

    backend: Backend
    store: ConversationStore | None
    conversation_id: int | None
    retriever: Callable[[], DocumentRetriever | None]
    """The session's retriever, made on first use (only a grounded reply's check needs it)."""
    tools: ToolUse | None

    def events(
        self, prepared: PreparedTurn, user: Message | None, cancel: CancelToken | None
    ) -> Iterator[TurnEvent]:
        request, params = prepared.request, prepared.params
        yield TurnStarted(request, user, prepared.plan, tuple(prepared.notes))
        backend = self.backend
        result = TurnResult(
            request,
            plan=prepared.plan,
            user_message=user,
            sources=prepared.sources,
            retrieval=prepared.retrieval.settings_summary() if prepared.retrieval else None,
            model=backend.identity.name,
            notes=list(prepared.notes),
            constrained=bool(prepared.template_turn and prepared.template_turn.constrained),
        )
        storing = request.store and user is not None
        parent = user.id if user is not None else None
        if prepared.refusal is not None:
            writer = self._writer(prepared, parent, storing)
            result.kind, result.text, result.finish_reason = "refusal", prepared.refusal, "refused"
            result.message = writer.finish(prepared.refusal, "complete")
            yield TurnFinished(result)
            return
        assert prepared.plan is not None
        if isinstance(backend, KeepsStates):  # its saved state names this conversation
            backend.keep_state_for(
                state_owner(self.store if storing else None, self.conversation_id)
            )
        result.stats.prompt_tokens = prepared.plan.prompt_tokens
        messages = list(prepared.plan.messages)
        max_steps = self.tools.max_steps if self.tools is not None and params.tools else 1
        while True:
            last = result.steps >= max_steps
            step_params = params
            if params.tool_choice == "required" and (result.steps > 1 or last):
                # Forced to call once; after that (and at the limit) the model may answer.
                step_params = params.replace(tool_choice="auto")
            writer = self._writer(prepared, parent, storing)
            calls = yield from self._stream_step(
                prepared, messages, step_params, writer, result, cancel, run_calls=not last
            )
            if not calls:
                break
            assert self.tools is not None
            runner = ToolRunner(
                self.tools, self.store if storing else None, self.conversation_id, cancel
            )
            yield from runner.run(calls, writer.message.id if writer.message else parent)
            result.tool_calls += calls
            result.tool_results += runner.results
            for found in runner.results:
                result.sources += [s for s in found.sources if s not in result.sources]
            parent = runner.last_id
            messages += step_messages(result.text, calls, runner.results)
            messages, cut = fit_tool_results(
                messages,
                lambda m: backend.count_chat_tokens(m, params),
                backend.n_ctx,
                params.max_tokens,
            )
            if cut:
                result.notes.append("tool results were cut to fit the context")
            if cancel is not None and cancel.cancelled:
                result.finish_reason, result.text = "cancelled", ""
                break
            result.steps += 1
        yield TurnFinished(result)

    def _writer(self, prepared: PreparedTurn, parent: int | None, storing: bool) -> ReplyWriter:
        request, params = prepared.request, prepared.params
        return ReplyWriter(
            self.store if storing else None,
            self.conversation_id,
            parent,
            model=self.backend.identity.to_dict(),
            params=params.to_dict(),
            seed=params.seed,
            template=request.template.name if request.template else None,
            sources=prepared.sources if request.collection is not None else None,
            turn=prepared.record(),
        )

    def _stream_step(
        self,
        prepared: PreparedTurn,
        messages: list[ChatMessage],
        params: GenerationParams,
        writer: ReplyWriter,
        result: TurnResult,
        cancel: CancelToken | None,
        run_calls: bool = True,
    ) -> Generator[TurnEvent, None, list[ToolCall]]:
        """Stream one model call into ``writer``; returns the calls it asked for (none: this
        step's reply is the answer, finished and checked). At the step limit (``run_calls``
        off) the tools are still described, so the model's calls are read and left out of the
        answer, but not run."""
        pieces: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        finish, error = "error", None
        try:
            for event in self.backend.stream_chat(messages, params, cancel):
                if isinstance(event, TokenEvent):
                    pieces.append(event.text)
                    writer.grow(pieces, thoughts)
                    yield event
                elif isinstance(event, ReasoningEvent):
                    thoughts.append(event.text)
                    writer.grow(pieces, thoughts)
                    yield event
                elif isinstance(event, ToolCallEvent):
                    calls.append(event.call)
                elif isinstance(event, DoneEvent):
                    result.stats, finish, error = event.stats, event.finish_reason, event.error
        except (KeyboardInterrupt, GeneratorExit):
            finish = "cancelled"
            raise
        except ChatappError as exc:
            finish, error = "error", exc.message
            raise
        finally:
            result.text, result.finish_reason, result.error = "".join(pieces), finish, error
            result.reasoning = "".join(thoughts)
            asked = finish == "tool_calls" and bool(calls) and bool(params.tools)
            if asked and not run_calls:
                result.notes.append(
                    f"the tool step limit ({result.steps}) was reached: the model's last "
                    f"{'call was' if len(calls) == 1 else 'calls were'} not run"
                )
                asked = False
            if asked:
                writer.finish(
                    result.text,
                    "complete",
                    stats=result.stats.to_dict(),
                    turn={**prepared.record(), "step": result.steps},
                    reasoning=result.reasoning or None,
                    tool_calls=calls,
                )
            else:
                if finish == "tool_calls":  # calls nobody offered: the reply ends here
                    result.finish_reason = finish = "stop"
                if finish not in ("cancelled", "error"):
                    self._check_reply(prepared, result)
                self._finish(prepared, writer, result)
        return calls if asked else []

    def _check_reply(self, prepared: PreparedTurn, result: TurnResult) -> None:
        """A template reply parsed against its output spec; a grounded reply's citations."""
        if prepared.template_turn is not None:
            result.parsed = prepared.template_turn.parse(result.text)
        retriever = self.retriever() if prepared.sources else None
        if retriever is not None and prepared.retrieval is not None:
            from chatapp.retrieval.search.citations import check_answer

            try:
                embedder = retriever.embedder(prepared.retrieval.collection)
                result.citations = check_answer(result.text, prepared.sources, embedder)
            except ChatappError as exc:
                result.notes.append(f"citations not checked: {exc.message}")

    def _finish(self, prepared: PreparedTurn, writer: ReplyWriter, result: TurnResult) -> None:
        plan = prepared.plan
        assert plan is not None
        result.stats.dropped_messages = plan.dropped_messages
        result.stats.truncated_input = plan.truncated_input
        result.stats.n_ctx = plan.n_ctx
        record = prepared.record()
        if result.citations is not None:
            report = result.citations
            record["citations"] = {
                "citations": report.citations,
                "invalid_citations": report.invalid_citations,
                "unsupported": report.unsupported,
                "checked_sentences": len(report.sentences),
            }
        if result.parsed is not None:
            record["parsed"] = {"valid": result.parsed.valid, "error": result.parsed.error}
        if result.tool_results:
            record["steps"] = result.steps
            record["tools"] = [
                {"name": r.name, "status": r.status, "duration_s": round(r.duration_s, 3)}
                for r in result.tool_results
            ]
        result.message = writer.finish(
            result.text,
            result.status,
            stats=result.stats.to_dict(),
            error=result.error,
            turn=record,
            reasoning=result.reasoning or None,
            sources=result.sources if result.tool_results else None,
        )

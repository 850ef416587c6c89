"""Sending, regenerating, editing and stopping replies, for the chat screen.

``ReplyController`` belongs to the chat screen (it is given the screen as its ``ReplyHost``). A
reply runs in a thread worker (``chatapp.ui.generation.run_reply``) through a ChatSession from
the screen's ChatContext — the same pipeline as ``chatapp ask``. The controller mounts the user
message and an empty reply when the session says the turn started, pours new text into the reply
on a ~30 Hz timer (one Markdown append per tick, never one per token; a thinking model's
reasoning goes to the folded block above the answer the same way), and settles the reply's
id, status and branch when it ends. The status line's live numbers (tokens, tok/s, context) change
on a slower clock of their own: drawn in the same frame as the reply, the status line (the full
width of the screen) made Textual repaint everything between it and the reply. A refusal ("the documents don't contain this") arrives as a
stored reply like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from chatapp.errors import ChatappError
from chatapp.ui.branches import branch_of
from chatapp.ui.generation import Reply, ReplyEnded, ReplyStarted, run_reply

if TYPE_CHECKING:
    from textual.message import Message as TextualMessage
    from textual.timer import Timer
    from textual.widget import Widget
    from textual.worker import Worker

    from chatapp.domain import CancelToken
    from chatapp.session import TurnEvent, TurnRequest
    from chatapp.storage import Message
    from chatapp.ui.chat_context import ChatContext
    from chatapp.ui.widgets.chat_view import ChatView
    from chatapp.ui.widgets.header import ChatHeader
    from chatapp.ui.widgets.message import MessageWidget
    from chatapp.ui.widgets.prompt import PromptInput
    from chatapp.ui.widgets.status import StatusBar
    from chatapp.ui.widgets.tool_call import ToolCallWidget

FLUSH_INTERVAL_S = 1 / 20
"""How often streamed text reaches the screen: fast enough to look live, slow enough that a
fast model never makes the UI redraw per token. Every frame costs the UI ~2 ms of CPU taken
from the model's threads; 20 a second instead of 30 cut the UI's CPU per token by ~15%
(benchmarks/ui.py, stream_cpu)."""

STATUS_INTERVAL_S = 1 / 4
"""How often the status line's token count and rate change while a reply streams."""

FINISH_TEXT = {
    "stop": "reply complete",
    "length": "reply stopped at the token limit",
    "cancelled": "stopped: the partial reply is kept (marked interrupted)",
    "error": "the reply failed",
    "refused": "the documents don't contain an answer (the model was not asked)",
}
BUSY = "A reply is still being written: press Esc to stop it."


class ReplyHost(Protocol):
    """What the controller needs from the chat screen."""

    conversation_id: int | None
    view_epoch: int
    context: ChatContext

    @property
    def chat_view(self) -> ChatView: ...
    @property
    def prompt(self) -> PromptInput: ...
    @property
    def status_bar(self) -> StatusBar: ...
    @property
    def header(self) -> ChatHeader: ...

    def notify(self, message: str, *, severity: Any = "information") -> None: ...
    def refresh_sidebar(self) -> None: ...
    async def open_conversation(self, conversation_id: int | None) -> None: ...
    def sources_widget(self, message: Message) -> Widget | None: ...
    def reply_finished(self) -> None: ...
    def post_message(self, message: TextualMessage) -> bool: ...

    @property
    def run_worker(self) -> Callable[..., Worker[Any]]: ...
    @property
    def set_interval(self) -> Callable[..., Timer]: ...


TurnRunner = Callable[["CancelToken"], Iterator["TurnEvent"]]


class ReplyController:
    """One reply at a time for one chat screen (see the module docstring)."""

    def __init__(self, host: ReplyHost) -> None:
        self.host = host
        self.reply: Reply | None = None
        self.widget: MessageWidget | None = None
        self.steps: list[MessageWidget] = []
        """Widgets of this reply's earlier steps that said something before calling tools."""
        self.calls: list[ToolCallWidget] = []
        """The reply's tool calls shown so far, in order (a model may reuse a call's id in a
        later step, so ids only pair a call's start with its end)."""
        self._open_calls: dict[str, ToolCallWidget] = {}
        self.started_count = 0
        self._last_status: tuple[int, Any] = (-1, None)
        self._timer = host.set_interval(FLUSH_INTERVAL_S, self.flush, pause=True)
        self._status_at = 0.0

    def running(self) -> bool:
        return self.reply is not None and not self.reply.done

    def refuse_if_busy(self) -> bool:
        if self.running():
            self.host.notify(BUSY, severity="warning")
            return True
        return False

    # -- starting -------------------------------------------------------------------------

    def send(self, request: TurnRequest) -> Reply | None:
        """Send ``request`` as the next user turn of the shown conversation."""
        if self.refuse_if_busy():
            return None
        return self._start("send", request.text, self._runner("send", request=request))

    def regenerate(self, text: str) -> Reply | None:
        """A new reply to the last user message, made by the turn that made the old one."""
        if self.refuse_if_busy():
            return None
        return self._start("regenerate", text, self._runner("regenerate"))

    def edit(self, message_id: int, text: str) -> Reply | None:
        if self.refuse_if_busy():
            return None
        runner = self._runner("edit", text=text, message_id=message_id)
        return self._start("edit", text, runner)

    def _runner(
        self,
        kind: str,
        *,
        request: TurnRequest | None = None,
        text: str = "",
        message_id: int | None = None,
    ) -> TurnRunner:
        context, conversation_id = self.host.context, self.host.conversation_id

        def run(cancel: CancelToken) -> Iterator[TurnEvent]:
            if not context.wait_for_model(cancel):
                return iter(())
            session = context.session(conversation_id)
            if kind == "regenerate":
                return session.regenerate(cancel)
            if kind == "edit":
                assert message_id is not None
                return session.edit(message_id, text, cancel)
            assert request is not None
            return session.send(request, cancel)

        return run

    def _start(self, kind: str, text: str, run_turn: TurnRunner) -> Reply:
        host = self.host
        reply = Reply(host.conversation_id, kind, host.view_epoch)
        reply.prompt_text = text
        self.started_count += 1
        self.reply, self.widget = reply, None
        self.steps, self.calls, self._open_calls = [], [], {}
        reply.worker = host.run_worker(
            partial(run_reply, host, reply, run_turn),
            thread=True,
            exclusive=True,
            group="generation",
            name=f"reply:{kind}",
            exit_on_error=False,
        )
        model = host.context.model
        waiting = model.loading and model.error is None
        host.status_bar.ready("waiting for the model to load…" if waiting else "thinking…")
        host.status_bar.clear_stats()
        self._timer.resume()
        return reply

    # -- streaming ------------------------------------------------------------------------

    async def started(self, message: ReplyStarted) -> None:
        host, reply = self.host, message.reply
        if reply is not self.reply:
            return
        store = host.context.store
        if host.conversation_id is None and reply.view_epoch == host.view_epoch:
            host.conversation_id = reply.conversation_id
            if store is not None and reply.conversation_id is not None:
                host.header.set_title(store.get_conversation(reply.conversation_id).title)
        host.refresh_sidebar()
        if reply.view_epoch == host.view_epoch:
            await self._attach(reply)

    async def reattach(self) -> None:
        """Called when a conversation opens: show its reply if one is being generated."""
        reply, host = self.reply, self.host
        if reply is None or reply.done or reply.conversation_id != host.conversation_id:
            return
        reply.view_epoch = host.view_epoch
        if reply.started:
            await self._attach(reply)

    async def _attach(self, reply: Reply) -> None:
        view, store = self.host.chat_view, self.host.context.store
        user = reply.user_message
        assert user is not None and store is not None
        if user.id in {m.id for m in view.thread}:
            await view.truncate_after(user.id)
        else:
            await view.truncate_after(user.parent_id)
            await view.add_message(user, branch_of(store, user.id))
        for note in reply.notes:
            await view.add_notice(note.rstrip(".") + ".")
        backend = self.host.context.model.backend
        self.widget = await view.add_reply(backend.identity.name if backend else None)
        reply.shown = reply.thoughts_shown = reply.tool_events_shown = 0  # shown anew
        self.steps, self.calls, self._open_calls = [], [], {}

    async def flush(self) -> None:
        """One frame: the text produced since the last one is appended to the reply, or the
        status line's numbers change (in a frame without new text, at least every
        ``STATUS_INTERVAL_S``; new text then waits one frame)."""
        reply = self.reply
        if reply is None:
            return
        now = time.monotonic()
        pending = (
            reply.token_count > reply.shown
            or len(reply.thoughts) > reply.thoughts_shown
            or len(reply.tool_events) > reply.tool_events_shown
        )
        status_due = not pending or now - self._status_at >= STATUS_INTERVAL_S
        if status_due and self._show_progress(reply):
            self._status_at = now
            return
        await self._append_unshown(reply)

    async def _append_unshown(self, reply: Reply) -> None:
        widget = self.widget
        if widget is None or reply.view_epoch != self.host.view_epoch:
            return
        thoughts = reply.take_unshown_thoughts()
        if thoughts:
            await widget.append_reasoning(thoughts, reply.thinking_seconds())
        while reply.tool_events_shown < len(reply.tool_events):
            at, event = reply.tool_events[reply.tool_events_shown]
            reply.tool_events_shown += 1
            await self._append_text(widget, reply.take_text_until(at), reply)
            widget = await self._show_tool_event(widget, event)
        text, _count = reply.take_unshown()
        await self._append_text(widget, text, reply)

    async def _append_text(self, widget: MessageWidget, text: str, reply: Reply) -> None:
        if text:
            if widget.reasoning:
                widget.end_reasoning(reply.thinking_seconds())
            await widget.append(text)

    async def _show_tool_event(self, widget: MessageWidget, event: Any) -> MessageWidget:
        """A call decided (folded, before the reply still streaming) or ended (its result).
        After a step that said something, the next step's text goes into a new widget."""
        from chatapp.session.turns import ToolCallStarted
        from chatapp.ui.widgets.tool_call import ToolCallWidget

        view = self.host.chat_view
        started = isinstance(event, ToolCallStarted)
        shown = None if started else self._open_calls.pop(event.call.id, None)
        if shown is None:  # (a call stopped before it was decided ends without a start)
            if started:
                shown = ToolCallWidget.started(event.call, event.allowed, event.reason)
                self._open_calls[event.call.id] = shown
            else:
                shown = ToolCallWidget.started(event.call, False, "not run")
            self.calls.append(shown)
            if widget.content.strip():
                widget.status = "complete"  # this step is done; the next one streams below
                self.steps.append(widget)
                await view.add_tool_call(shown)
                widget = await view.add_reply(widget.model_name)
                self.widget = widget
            else:
                await view.add_tool_call(shown, before=widget)
        if not started:
            shown.finish(event.result)
        return widget

    def _show_progress(self, reply: Reply) -> bool:
        """The status line's live numbers (tokens so far, tokens/s, context used); False when
        they have not changed."""
        plan = reply.plan
        if plan is None:
            return False
        state = (reply.token_count, reply.tokens_per_s())
        if state == self._last_status:
            return False
        self._last_status = state
        self.host.status_bar.generating(
            reply.token_count, state[1], plan.prompt_tokens + reply.token_count, plan.n_ctx
        )
        return True

    # -- ending ---------------------------------------------------------------------------

    async def ended(self, message: ReplyEnded) -> None:
        host, reply = self.host, message.reply
        if reply is not self.reply:
            return
        await self._append_unshown(reply)
        self._timer.pause()
        shown_here = reply.view_epoch == host.view_epoch
        widget = self.widget if shown_here else None
        self.reply, self.widget = None, None
        self._last_status = (-1, None)
        if reply.finished is not None:
            await self._settle(reply, widget)
        elif reply.error is not None:
            if not reply.started:
                if reply.kind == "send":
                    host.prompt.restore(reply.prompt_text)
                host.status_bar.failed(f"not sent: {reply.error}")
            else:
                host.status_bar.failed(reply.error)
                if shown_here:
                    # The session stored what it had with status "error": show that.
                    await host.open_conversation(host.conversation_id)
            if shown_here:
                await host.chat_view.add_notice(reply.error, error=True)
        else:
            host.status_bar.ready("stopped before the reply started")
        host.refresh_sidebar()
        host.reply_finished()

    async def _settle(self, reply: Reply, widget: MessageWidget | None) -> None:
        host, result = self.host, reply.finished
        assert result is not None
        stored, user = result.message, reply.user_message
        store = host.context.store
        if stored is not None and store is not None:
            steps: list[Message] = []
            try:  # read before any await: the conversation may be deleted meanwhile
                reply_branch = branch_of(store, stored.id)
                user_branch = branch_of(store, user.id) if user is not None else None
                if self.calls and user is not None:
                    chain = store.thread(stored.conversation_id, stored.id)
                    ids = [m.id for m in chain]
                    if user.id in ids:
                        steps = chain[ids.index(user.id) + 1 : -1]
            except ChatappError:
                widget = None
            if widget is not None:
                host.chat_view.thread.extend(steps)  # the steps and their calls, then the answer
                await self._settle_steps(steps)
                host.chat_view.thread.append(stored)
                if user is not None and user_branch is not None:
                    host.chat_view.set_branch(user.id, user_branch)
                sources = host.sources_widget(stored) if stored.sources else None
                await widget.finish(stored, reply_branch, result.error, sources)
        stats = result.stats
        host.status_bar.finished(
            FINISH_TEXT.get(result.finish_reason, "reply complete"),
            stats.completion_tokens,
            stats.decode_tokens_per_s or None,
            stats.prompt_tokens + stats.completion_tokens,
            stats.n_ctx,
        )

    async def _settle_steps(self, steps: list[Message]) -> None:
        """The stored rows of the reply's earlier steps and calls: ids for their widgets."""
        store = self.host.context.store
        assert store is not None
        spoke = [m for m in steps if m.role == "assistant" and m.content.strip()]
        for widget, row in zip(self.steps, spoke, strict=False):
            await widget.finish(row, branch_of(store, row.id))
        rows = [m for m in steps if m.role == "tool"]
        for shown, row in zip(self.calls, rows, strict=False):
            shown.message_id = row.id

    # -- stopping -------------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the reply being written (its text so far is kept); False when none is."""
        if not self.running():
            return False
        assert self.reply is not None
        self.reply.stop()
        self.host.status_bar.ready("stopping…")
        return True

    async def stop_for(self, conversation_id: int | None) -> None:
        """Stop the reply being generated for this conversation and wait until it is stored."""
        reply = self.reply
        if reply is None or reply.done or reply.conversation_id != conversation_id:
            return
        reply.stop()
        if reply.worker is not None:
            await reply.worker.wait()

    def stop_blocking(self, timeout: float) -> None:
        """Stop any reply and wait (from any thread) until its partial text is stored."""
        reply = self.reply
        if reply is not None and not reply.done:
            reply.stop()
            reply.ended.wait(timeout)

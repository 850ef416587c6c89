"""Sending, regenerating, editing and stopping replies, for the chat screen.

A reply runs in a thread worker (``chatapp.ui.generation.run_reply``); this part of the screen
mounts the user message and an empty reply when the session says the turn started, pours new
text into the reply on a ~30 Hz timer (so the UI does one Markdown append per tick, never one per
token), and settles the reply's id, status and branch when it ends.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from chatapp.errors import ChatappError
from chatapp.ui.branches import branch_of
from chatapp.ui.generation import Reply, ReplyEnded, ReplyStarted, run_reply
from chatapp.ui.widgets.prompt import PromptInput

if TYPE_CHECKING:
    from textual.timer import Timer

    from chatapp.session import TurnOptions
    from chatapp.ui.widgets.message import MessageWidget

FLUSH_INTERVAL_S = 1 / 30
"""How often streamed text reaches the screen: fast enough to look live, slow enough that a
fast model never makes the UI redraw per token."""

FINISH_TEXT = {
    "stop": "reply complete",
    "length": "reply stopped at the token limit",
    "cancelled": "stopped: the partial reply is kept (marked interrupted)",
    "error": "the reply failed",
}


def left_out_notice(count: int, n_ctx: int) -> str:
    noun = "message" if count == 1 else "messages"
    return f"{count} earlier {noun} left out to fit the model's context ({n_ctx:,} tokens)."


class ReplyFlow:
    """Mixed into ChatScreen; uses its chat_view, prompt, status_bar, app and view_epoch."""

    reply: Reply | None
    replies_started: int
    reply_widget: MessageWidget | None
    _flush_timer: Timer
    _last_status: tuple[int, Any]

    def setup_replies(self: Any) -> None:
        self.replies_started = 0
        self.reply = None
        self.reply_widget = None
        self._last_status = (-1, None)
        self._flush_timer = self.set_interval(FLUSH_INTERVAL_S, self._flush_reply, pause=True)

    def reply_running(self) -> bool:
        return self.reply is not None and not self.reply.done

    # -- starting -------------------------------------------------------------------------

    def on_prompt_input_submitted(self: Any, event: PromptInput.Submitted) -> None:
        event.stop()
        if self.reply_running():
            self.notify("A reply is still being written: press Esc to stop it.", severity="warning")
            return
        self.prompt.remember(event.text)
        self.prompt.clear_prompt()
        self.start_turn("send", text=event.text)

    def send_turn(self: Any, text: str, options: TurnOptions | None = None) -> Reply | None:
        """Send ``text`` as the next user turn with explicit options (template, model_text,
        sources, params); the entry point for extensions. None when a reply is running."""
        if self.reply_running():
            self.notify("A reply is still being written: press Esc to stop it.", severity="warning")
            return None
        return self.start_turn("send", text=text, options=options)

    def action_regenerate(self: Any) -> None:
        if self.reply_running():
            self.notify("A reply is still being written: press Esc to stop it.", severity="warning")
            return
        last_user = self._last("user")
        if last_user is None:
            self.notify("Nothing to regenerate yet.", severity="warning")
            return
        self.start_turn("regenerate", text=last_user.content)

    def edit_message(self: Any, message_id: int, text: str) -> None:
        if self.reply_running():
            self.notify("A reply is still being written: press Esc to stop it.", severity="warning")
            return

        from chatapp.ui.screens.dialogs import EditMessageScreen

        def resend(new_text: str | None) -> None:
            if new_text:
                self.start_turn("edit", text=new_text, message_id=message_id)

        self.app.push_screen(EditMessageScreen(text), resend)

    def start_turn(
        self: Any,
        kind: str,
        *,
        text: str,
        options: TurnOptions | None = None,
        message_id: int | None = None,
    ) -> Reply:
        reply = Reply(self.conversation_id, kind, self.view_epoch)
        reply.prompt_text = text
        self.replies_started += 1
        run_turn = self.app.turn_runner(kind, self.conversation_id, text, options, message_id)
        self.reply = reply
        self.reply_widget = None
        reply.worker = self.run_worker(
            partial(run_reply, self, reply, run_turn),
            thread=True,
            exclusive=True,
            group="generation",
            name=f"reply:{kind}",
            exit_on_error=False,
        )
        waiting = self.app.backend is None and self.app.backend_error is None
        self.status_bar.ready("waiting for the model to load…" if waiting else "thinking…")
        self.status_bar.clear_stats()
        self._flush_timer.resume()
        return reply

    # -- streaming ------------------------------------------------------------------------

    async def on_reply_started(self: Any, message: ReplyStarted) -> None:
        reply = message.reply
        if reply is not self.reply:
            return
        if self.conversation_id is None and reply.view_epoch == self.view_epoch:
            self.conversation_id = reply.conversation_id
            conversation = self.app.store.get_conversation(reply.conversation_id)
            self.header.set_title(conversation.title)
        self.refresh_sidebar()
        if reply.view_epoch == self.view_epoch:
            await self._attach_reply(reply)

    async def reattach_reply(self: Any) -> None:
        """Called when a conversation opens: show its reply if one is being generated."""
        reply = self.reply
        if reply is None or reply.done or reply.conversation_id != self.conversation_id:
            return
        reply.view_epoch = self.view_epoch
        if reply.started:
            await self._attach_reply(reply)

    async def _attach_reply(self: Any, reply: Reply) -> None:
        view = self.chat_view
        user = reply.user_message
        assert user is not None
        if user.id in {m.id for m in view.thread}:
            await view.truncate_after(user.id)
        else:
            await view.truncate_after(user.parent_id)
            await view.add_message(user, branch_of(self.app.store, user.id))
        plan = reply.plan
        if plan is not None and plan.dropped_messages:
            await view.add_notice(left_out_notice(plan.dropped_messages, plan.n_ctx))
        backend = self.app.backend
        self.reply_widget = await view.add_reply(backend.identity.name if backend else None)
        reply.shown = 0  # the new widget shows everything produced so far

    async def _flush_reply(self: Any) -> None:
        reply = self.reply
        if reply is None:
            return
        widget = self.reply_widget
        if widget is not None and reply.view_epoch == self.view_epoch:
            text, _count = reply.take_unshown()
            if text:
                await widget.append(text)
        plan = reply.plan
        if plan is not None:
            state = (reply.token_count, reply.tokens_per_s())
            if state != self._last_status:
                self._last_status = state
                self.status_bar.generating(
                    reply.token_count, state[1], plan.prompt_tokens + reply.token_count, plan.n_ctx
                )

    # -- ending ---------------------------------------------------------------------------

    async def on_reply_ended(self: Any, message: ReplyEnded) -> None:
        reply = message.reply
        if reply is not self.reply:
            return
        await self._flush_reply()
        self._flush_timer.pause()
        shown_here = reply.view_epoch == self.view_epoch
        widget = self.reply_widget if shown_here else None
        self.reply = None
        self.reply_widget = None
        self._last_status = (-1, None)
        store = self.app.store
        if reply.finished is not None:
            finished = reply.finished
            stored = finished.message
            user = reply.user_message
            try:  # read before any await: the conversation may be deleted meanwhile
                reply_branch = branch_of(store, stored.id)
                user_branch = branch_of(store, user.id) if user is not None else None
            except ChatappError:
                widget, shown_here = None, False
            if widget is not None:
                self.chat_view.thread.append(stored)
                if user is not None and user_branch is not None:
                    self.chat_view.set_branch(user.id, user_branch)
                sources = self.app.sources_widget(stored) if stored.sources else None
                await widget.finish(stored, reply_branch, finished.error, sources)
            stats = finished.stats
            self.status_bar.finished(
                FINISH_TEXT.get(finished.finish_reason, "reply complete"),
                stats.completion_tokens,
                stats.decode_tokens_per_s or None,
                stats.prompt_tokens + stats.completion_tokens,
                stats.n_ctx,
            )
        elif reply.error is not None:
            if not reply.started:
                if reply.kind == "send":
                    self.prompt.restore(reply.prompt_text)
                self.status_bar.failed(f"not sent: {reply.error}")
            else:
                self.status_bar.failed(reply.error)
                if shown_here:
                    # The session stored what it had with status "error": show that.
                    await self.open_conversation(self.conversation_id)
            if shown_here:
                await self.chat_view.add_notice(reply.error, error=True)
        else:
            self.status_bar.ready("stopped before the reply started")
        self.refresh_sidebar()
        self.app.after_reply()

    # -- stopping -------------------------------------------------------------------------

    def action_stop(self: Any) -> None:
        if self.reply_running():
            self.reply.stop()
            self.status_bar.ready("stopping…")
        elif self.has_class("-sidebar-overlay"):
            self.action_toggle_sidebar()
        else:
            self.prompt.focus()

    async def stop_reply_for(self: Any, conversation_id: int | None) -> None:
        """Stop the reply being generated for this conversation and wait until it is stored."""
        reply = self.reply
        if reply is None or reply.done or reply.conversation_id != conversation_id:
            return
        reply.stop()
        if reply.worker is not None:
            await reply.worker.wait()

    def on_unmount(self) -> None:
        # The app is closing (window closed, quit): stop the reply; run_app waits for it to be
        # stored before closing the database.
        if self.reply is not None and not self.reply.done:
            self.reply.stop()

    def stop_reply_blocking(self, timeout: float) -> None:
        """Stop any reply and wait (from any thread) until its partial text is stored."""
        reply = self.reply
        if reply is not None and not reply.done:
            reply.stop()
            reply.ended.wait(timeout)

"""Durable streaming: a reply is in the store from its first moment, and its text as it grows.

``ReplyWriter`` writes the assistant row when the reply starts (status ``streaming``, owned by
this process), saves the text so far at most every ``SAVE_INTERVAL_S`` in a short transaction of
its own (never per token: the check per token is one clock read), and finalizes the row once
(``complete`` | ``interrupted`` | ``error``) with the stats and the record of what produced it.
A process killed mid-reply loses at most the last interval of text; the next time a store is
opened, the row it left ``streaming`` becomes ``interrupted``. A process about to leave at once
(the chat after SIGTERM/SIGHUP, when its shutdown hangs) calls ``interrupt_open_replies`` first,
which stores every open reply's text so far as ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from chatapp.errors import ChatappError, ConversationDeletedError, NotFoundError

if TYPE_CHECKING:
    from chatapp.storage import ConversationStore, Message

log = logging.getLogger(__name__)

SAVE_INTERVAL_S = 0.5
"""Longest stretch of streamed text a crash can lose."""

_open_writers: weakref.WeakSet[ReplyWriter] = weakref.WeakSet()
_open_lock = threading.Lock()


def interrupt_open_replies() -> int:
    """Store the text so far of every reply still being written in this process as
    ``interrupted`` (from any thread; for a process about to ``os._exit``). Returns how many."""
    with _open_lock:
        writers = list(_open_writers)
    return sum(1 for writer in writers if writer.interrupt())


class ReplyWriter:
    """The stored row of one reply while it streams (``None`` store: nothing is written)."""

    def __init__(
        self,
        store: ConversationStore | None,
        conversation_id: int | None,
        parent_id: int | None,
        **fields: Any,
    ) -> None:
        self.store = store
        self.message: Message | None = None
        self._saved = (0, 0)
        self._next_save = time.monotonic() + SAVE_INTERVAL_S
        self._pieces: list[str] = []
        self._reasoning: list[str] = []
        if store is not None and conversation_id is not None:
            self.message = store.add_message(
                conversation_id, "assistant", "", parent_id=parent_id, status="streaming", **fields
            )
            with _open_lock:
                _open_writers.add(self)

    def grow(self, pieces: list[str], reasoning: list[str]) -> None:
        """Called after each piece of answer or reasoning: saves both so far when the interval
        is up."""
        self._pieces, self._reasoning = pieces, reasoning  # what interrupt() stores
        if self.message is None or time.monotonic() < self._next_save:
            return
        self._save("".join(pieces), "".join(reasoning) if reasoning else None)

    def _save(self, text: str, reasoning: str | None) -> None:
        assert self.store is not None and self.message is not None
        self._next_save = time.monotonic() + SAVE_INTERVAL_S
        sizes = (len(text), len(reasoning or ""))
        if sizes == self._saved:
            return
        try:
            saved = self.store.save_streamed_text(self.message.id, text, reasoning)
            self._saved = sizes
        except ChatappError as exc:  # a full disk must not stop the reply; the end retries
            log.warning("reply text not saved while streaming: %s", exc)
            return
        except Exception as exc:  # sqlite3 errors (disk full, I/O) likewise
            log.warning("reply text not saved while streaming: %s", exc)
            return
        if not saved and not self.store.has_conversation(self.message.conversation_id):
            self._deleted()  # the user deleted the chat: stop the reply, store nothing

    def _deleted(self) -> None:
        assert self.message is not None
        self.store = None  # nothing more is written for it, the end of the reply included
        with _open_lock:
            _open_writers.discard(self)
        raise ConversationDeletedError(self.message.conversation_id)

    def finish(self, text: str, status: str, **fields: Any) -> Message | None:
        """Store the final text and status (and stats, error, record…) in one write."""
        if self.store is None or self.message is None:
            return None
        with _open_lock:
            _open_writers.discard(self)
        try:
            self.message = self.store.update_message(
                self.message.id, content=text, status=status, **fields
            )
        except NotFoundError:
            if self.store.has_conversation(self.message.conversation_id):
                raise
            self._deleted()
        return self.message

    def interrupt(self) -> bool:
        """Store the text so far as ``interrupted`` unless the reply has been finished; a
        ``finish`` that comes later still writes its own final row."""
        with _open_lock:
            if self not in _open_writers:
                return False
            _open_writers.discard(self)
        assert self.store is not None and self.message is not None
        try:
            self.store.update_message(
                self.message.id,
                content="".join(self._pieces),
                status="interrupted",
                reasoning="".join(self._reasoning) or None,
            )
        except Exception as exc:  # leaving anyway: the next start recovers the row
            log.warning("reply not stored before leaving: %s", exc)
            return False
        return True

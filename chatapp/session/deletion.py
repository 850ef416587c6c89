"""Deleting a conversation from everywhere chatapp keeps it, and naming whose conversation a saved
model state holds.

A conversation lives in the database (its rows, their words in the search index, old pages in
the WAL) and in the warm-resume cache (saved KV states hold its token ids, which detokenize to
the whole conversation). Every front end deletes through ``delete_conversation`` so no copy
stays behind. The order closes the race with a reply still being written: the rows go first,
then the states; a state written meanwhile is removed by its own writer, which asks
``StateOwner.exists`` once the file is in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatapp.engine.kv_state_files import StateOwner, forget_conversations, states_dir
from chatapp.errors import StoreError

if TYPE_CHECKING:
    from chatapp.storage import Conversation, ConversationStore

__all__ = ["delete_conversation", "forget_deleted_states", "state_owner"]


def state_key(conversation: Conversation) -> str:
    """How a saved state names a conversation: its id and when it was made (a database started
    afresh numbers from 1 again)."""
    return f"{conversation.id}@{conversation.created_at}"


def _key_exists(store: ConversationStore, key: str) -> bool:
    conversation_id, _, created_at = key.partition("@")
    if not conversation_id.isdigit():
        return False
    try:
        return store.has_conversation(int(conversation_id), created_at or None)
    except Exception:  # a store that cannot answer: keep the state, the next deletion asks again
        return True


def state_owner(store: ConversationStore | None, conversation_id: int | None) -> StateOwner:
    """The owner of a reply's saved state: the stored conversation, checked for existence when
    the state is written (None for a turn that is not stored: no state is kept for it)."""
    if store is None or conversation_id is None:
        return StateOwner(None)
    key = state_key(store.get_conversation(conversation_id))

    def exists() -> bool:
        try:
            return _key_exists(store, key)
        except Exception:
            return False

    return StateOwner(key, exists)


def forget_deleted_states(store: ConversationStore, keys: frozenset[str] = frozenset()) -> int:
    """Delete the saved states of the conversations ``keys`` and of any that no longer exist
    (a deletion an older version made); returns the files deleted."""
    return forget_conversations(keys, alive=lambda key: _key_exists(store, key))


def delete_conversation(store: ConversationStore, conversation_id: int) -> Conversation:
    """Delete a conversation for good: its rows (nothing left in the database files, see
    ``ConversationStore.delete_conversation``), then every saved model state holding its
    tokens. Returns what was deleted."""
    conversation = store.get_conversation(conversation_id)
    store.delete_conversation(conversation_id)
    try:
        forget_deleted_states(store, frozenset({state_key(conversation)}))
    except OSError as exc:  # the cache folder cannot be written: say so, never stay quiet
        raise StoreError(
            f"conversation {conversation_id} was deleted, but its saved model states in"
            f" {states_dir()} could not be ({exc.strerror or exc}); run `chatapp cache clear`"
            " once that folder can be written"
        ) from None
    return conversation

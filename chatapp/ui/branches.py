"""Where each message of a branch sits among its alternatives, from one read of the store."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from chatapp.ui.widgets.message import Branch

if TYPE_CHECKING:
    from chatapp.storage import ConversationStore, Message


def branch_positions(all_messages: list[Message], thread: list[Message]) -> dict[int, Branch]:
    """``{message id: Branch(position, count)}`` for the messages of ``thread`` that have
    siblings (same parent: regenerated replies, edited prompts)."""
    by_parent: dict[int | None, list[int]] = defaultdict(list)
    for message in all_messages:  # oldest first, as the store returns them
        by_parent[message.parent_id].append(message.id)
    positions: dict[int, Branch] = {}
    for message in thread:
        siblings = by_parent.get(message.parent_id, [])
        if len(siblings) > 1 and message.id in siblings:
            positions[message.id] = Branch(siblings.index(message.id) + 1, len(siblings))
    return positions


def branch_of(store: ConversationStore, message_id: int) -> Branch:
    siblings = [m.id for m in store.siblings(message_id)]
    if message_id not in siblings:
        return Branch()
    return Branch(siblings.index(message_id) + 1, len(siblings))


def switch_branch(store: ConversationStore, message_id: int, delta: int) -> int | None:
    """Show the sibling ``delta`` steps from ``message_id`` (down to its newest leaf); returns
    that sibling's id, or None when there is no sibling that way."""
    message = store.get_message(message_id)
    siblings = store.siblings(message_id)
    ids = [m.id for m in siblings]
    index = ids.index(message_id) + delta
    if not 0 <= index < len(ids):
        return None
    leaf = store.deepest_leaf(ids[index])
    store.set_active_leaf(message.conversation_id, leaf)
    return ids[index]

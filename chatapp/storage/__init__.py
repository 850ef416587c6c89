"""SQLite storage for conversations and messages (WAL, busy timeout, named migrations, FTS5)."""

from chatapp.storage.conversations import Conversation, ConversationStore, Message, SearchHit

__all__ = ["Conversation", "ConversationStore", "Message", "SearchHit", "open_store"]


def open_store() -> ConversationStore:
    """The user's conversation database (in the data dir)."""
    from chatapp import paths

    return ConversationStore(paths.database_path())

"""SQLite storage for conversations and messages (WAL, busy timeout, named migrations, FTS5)."""

from chatapp.storage.conversations import Conversation, ConversationStore, Message, SearchHit

__all__ = ["Conversation", "ConversationStore", "Message", "SearchHit"]

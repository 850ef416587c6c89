"""The turn pipeline: every front end builds, budgets, streams and stores a turn the same way.

``ChatSession`` (chat_session.py) is the one place that turns a ``TurnRequest`` into model input
(preparation.py: system prompt, template, retrieval, the context budget), streams the reply and
stores it as it grows (reply_writer.py); ``consume`` (turns.py) is the one loop front ends use to
read a turn's events into a ``TurnResult``.
"""

from chatapp.session.chat_session import ChatSession, title_from
from chatapp.session.preparation import PreparedTurn
from chatapp.session.turns import (
    TemplateCall,
    TurnEvent,
    TurnFinished,
    TurnRequest,
    TurnResult,
    TurnStarted,
    consume,
)

__all__ = [
    "ChatSession",
    "PreparedTurn",
    "TemplateCall",
    "TurnEvent",
    "TurnFinished",
    "TurnRequest",
    "TurnResult",
    "TurnStarted",
    "consume",
    "title_from",
]

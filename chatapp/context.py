"""The context budget: fit system prompt + history + the new turn into the model's context.

Rule: the system prompt and the new turn always stay; the oldest history turns are dropped until
the prompt plus room for the reply fits in n_ctx; the count of dropped messages is reported.
When even the system prompt and the new turn do not fit, ContextOverflowError says by how much.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chatapp.domain import ChatMessage
from chatapp.errors import ContextOverflowError

MIN_REPLY_TOKENS = 16
"""The reply always gets at least this many tokens of room."""


@dataclass
class ContextPlan:
    messages: list[ChatMessage]
    prompt_tokens: int
    dropped_messages: int
    n_ctx: int
    max_reply_tokens: int


def reply_reserve(max_tokens: int, n_ctx: int) -> int:
    """Room kept for the reply when deciding what history fits: the asked max_tokens, but never
    more than a quarter of the context (long histories should not vanish for a long reply)."""
    return max(MIN_REPLY_TOKENS, min(max_tokens, n_ctx // 4))


def fit_to_context(
    system: ChatMessage | None,
    history: Sequence[ChatMessage],
    turn: ChatMessage,
    *,
    count_chat_tokens: Callable[[Sequence[ChatMessage]], int],
    n_ctx: int,
    max_tokens: int,
) -> ContextPlan:
    """Choose the messages to send. History is dropped oldest first, a whole user/assistant
    exchange at a time so the model never sees a reply without its question."""
    head = [system] if system is not None else []
    core_tokens = count_chat_tokens([*head, turn])
    if core_tokens + MIN_REPLY_TOKENS > n_ctx:
        what = "the system prompt and this message" if system is not None else "this message"
        raise ContextOverflowError(
            f"prompt too long: {what} take {core_tokens} tokens but the model's context holds "
            f"{n_ctx} (with {MIN_REPLY_TOKENS} for the reply); shorten it or raise model.n_ctx"
        )
    budget = n_ctx - reply_reserve(max_tokens, n_ctx)

    # Per-message costs, measured once: a message's cost is what it adds to the formatted prompt.
    base = count_chat_tokens(head)
    costs = [count_chat_tokens([*head, m]) - base for m in history]
    kept = list(history)
    total = core_tokens + sum(costs)
    dropped = 0
    while kept and total > budget:
        # Drop the oldest exchange: a user message and the replies up to the next user message.
        cut = 1
        while cut < len(kept) and kept[cut].role != "user":
            cut += 1
        total -= sum(costs[:cut])
        del kept[:cut], costs[:cut]
        dropped += cut
    messages = [*head, *kept, turn]
    prompt_tokens = count_chat_tokens(messages)
    # The per-message estimate can be off by a few template tokens; trust the real count.
    while kept and prompt_tokens > budget:
        kept.pop(0)
        dropped += 1
        messages = [*head, *kept, turn]
        prompt_tokens = count_chat_tokens(messages)
    return ContextPlan(
        messages=messages,
        prompt_tokens=prompt_tokens,
        dropped_messages=dropped,
        n_ctx=n_ctx,
        max_reply_tokens=max(1, min(max_tokens, n_ctx - prompt_tokens)),
    )

"""The context budget: the one routine that decides what of a turn reaches the model.

Every turn — a chat message, a template run, a grounded question, an evaluation item — is fitted
here, by ``fit_to_context``, in this order of priority:

1. the system prompt and the new user turn always stay;
2. then sources (retrieved document chunks), best-ranked first, each cut to the sentences that
   answer the question within ``retrieval.source_tokens`` (``context_sources``); when not even
   the best fits, it alone is cut to the room left — this is the one place sources are cut;
3. then few-shot examples (the ones placed last, nearest the turn, kept first);
4. then earlier history, newest first, a whole user/assistant exchange at a time (with the
   exchange's tool calls and their results);
5. only when even the system prompt and the bare turn do not fit is the input cut (its end,
   marked), and only when that cannot help does ContextOverflowError say by how much.

Within a turn that calls tools, ``fit_tool_results`` cuts the results (longest first) so each
next step fits. The reply keeps room too: the asked ``max_tokens``, but never more than a quarter of the context,
so a long reply does not make the history vanish. The plan records what was left out and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chatapp.context_sources import cut_sources
from chatapp.domain import ChatMessage, Source
from chatapp.errors import ContextOverflowError

MIN_REPLY_TOKENS = 16
"""The reply always gets at least this many tokens of room."""

TRUNCATION_MARK = " […]"
SOURCE_SEPARATOR_TOKENS = 2
"""What joining one more source block adds besides its own tokens (the blank line between)."""
MIN_SOURCE_TOKENS = 32
"""A source shortened to fit must keep at least this much to be worth sending."""

Counter = Callable[[Sequence[ChatMessage]], int]


@dataclass
class TurnDraft:
    """The new user turn before fitting: how to write it from the sources that fit and the input.

    ``render(sources, input_text)`` returns the user message text from the sources that fit;
    ``source_text(n, source)`` is one source as the prompt shows it (what is counted).
    ``input_text`` is the part that may be cut as a last resort (None: the turn cannot be cut).
    """

    render: Callable[[list[Source], str | None], str]
    sources: list[Source] = field(default_factory=list)
    """Best-ranked first."""
    source_text: Callable[[int, Source], str] = lambda n, source: source.text
    question: str = ""
    """What the sources should answer: a cut source keeps the sentences that match it best."""
    source_tokens: int = 0
    """Tokens the sources' texts may take together (0: whole chunks, as far as the context
    allows)."""
    input_text: str | None = None


@dataclass
class ContextPlan:
    """What one turn sends, and what the budget left out."""

    messages: list[ChatMessage]
    prompt_tokens: int
    n_ctx: int
    max_reply_tokens: int
    sources: list[Source] = field(default_factory=list)
    dropped_messages: int = 0
    """Earlier history messages left out (oldest first)."""
    dropped_examples: int = 0
    """Few-shot examples (user/assistant pairs) left out."""
    shown_examples: int = 0
    dropped_sources: int = 0
    """Relevant sources left out (lowest-ranked first)."""
    shortened_source: bool = False
    input_chars: tuple[int, int] | None = None
    """(characters kept, characters given) when the input was cut."""

    @property
    def truncated_input(self) -> bool:
        return self.input_chars is not None

    def notes(self) -> list[str]:
        """One line per thing left out, for the CLI's stderr and the chat's notices."""
        notes = []
        if self.dropped_messages:
            noun = "message" if self.dropped_messages == 1 else "messages"
            notes.append(
                f"{self.dropped_messages} earlier {noun} left out to fit the model's context "
                f"({self.n_ctx:,} tokens)"
            )
        if self.dropped_examples:
            notes.append(f"left out {self.dropped_examples} example(s) to fit the context")
        if self.dropped_sources:
            notes.append(
                f"left out {self.dropped_sources} lower-ranked source(s) to fit the context"
            )
        if self.shortened_source:
            notes.append("the best source was shortened to fit the context")
        if self.input_chars is not None:
            kept, given = self.input_chars
            notes.append(
                f"input cut to its first {kept} of {given} characters to fit the model's "
                f"context ({self.n_ctx:,} tokens)"
            )
        return notes

    def summary(self) -> dict[str, Any]:
        """What is stored with the reply (no message text)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "n_ctx": self.n_ctx,
            "max_reply_tokens": self.max_reply_tokens,
            "messages": len(self.messages),
            "dropped_messages": self.dropped_messages,
            "shown_examples": self.shown_examples,
            "dropped_examples": self.dropped_examples,
            "sources": len(self.sources),
            "dropped_sources": self.dropped_sources,
            "shortened_source": self.shortened_source,
            "input_chars": list(self.input_chars) if self.input_chars else None,
        }


def reply_reserve(max_tokens: int, n_ctx: int) -> int:
    """Room kept for the reply when deciding what else fits: the asked max_tokens, but never
    more than a quarter of the context (long histories should not vanish for a long reply)."""
    return max(MIN_REPLY_TOKENS, min(max_tokens, n_ctx // 4))


def _exchanges(history: Sequence[ChatMessage]) -> list[list[ChatMessage]]:
    """History split into exchanges: a user message and the replies up to the next one."""
    groups: list[list[ChatMessage]] = []
    for message in history:
        if message.role == "user" or not groups:
            groups.append([message])
        else:
            groups[-1].append(message)
    return groups


class _Fitter:
    """One fitting run; keeps the counter and the fixed parts together."""

    def __init__(
        self,
        system: ChatMessage | None,
        draft: TurnDraft,
        count: Counter,
        count_text: Callable[[str], int],
        n_ctx: int,
        max_tokens: int,
    ) -> None:
        self.head = [system] if system is not None else []
        self.draft = draft
        self.count = count
        self.count_text = count_text
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.budget = n_ctx - reply_reserve(max_tokens, n_ctx)

    def turn(self, sources: list[Source], input_text: str | None) -> ChatMessage:
        return ChatMessage("user", self.draft.render(sources, input_text))

    def messages(
        self,
        history: list[ChatMessage],
        examples: list[ChatMessage],
        sources: list[Source],
        input_text: str | None,
    ) -> list[ChatMessage]:
        return [*self.head, *history, *examples, self.turn(sources, input_text)]

    def cut_input(self) -> tuple[str, tuple[int, int]]:
        """The longest prefix of the input with which system + turn fit (see module doc)."""
        text = self.draft.input_text or ""

        def fits(chars: int, limit: int) -> bool:
            trial = text[:chars].rstrip() + TRUNCATION_MARK
            return self.count([*self.head, self.turn([], trial)]) <= limit

        for limit in (self.budget, self.n_ctx - MIN_REPLY_TOKENS):
            if not text or not fits(0, limit):
                continue
            low, high = 0, len(text)
            while low < high:  # largest prefix that fits
                mid = (low + high + 1) // 2
                low, high = (mid, high) if fits(mid, limit) else (low, mid - 1)
            return text[:low].rstrip() + TRUNCATION_MARK, (low, len(text))
        used = self.count([*self.head, self.turn([], self.draft.input_text)])
        what = "the system prompt and this message" if self.head else "this message"
        raise ContextOverflowError(
            f"prompt too long: {what} take {used} tokens but the model's context holds "
            f"{self.n_ctx} (with {MIN_REPLY_TOKENS} for the reply); shorten it or raise "
            "model.n_ctx"
        )

    def source_cost(self, n: int, source: Source) -> int:
        return self.count_text(self.draft.source_text(n, source)) + SOURCE_SEPARATOR_TOKENS

    def pick_sources(self, room: int) -> tuple[list[Source], int, bool]:
        """The sources for ``room`` tokens: cut to the draft's source budget, then the
        best-ranked that fit; when not even the best does, it alone cut to the room.
        Returns (kept, tokens used, whether the best was cut to fit)."""
        draft = self.draft
        cut = cut_sources(draft.question, draft.sources, draft.source_tokens, self.count_text)
        kept: list[Source] = []
        used = 0
        for source in cut:
            cost = self.source_cost(len(kept) + 1, source)
            if used + cost > room:
                break  # lower-ranked sources are the ones left out
            kept.append(source)
            used += cost
        if kept or not draft.sources or room < MIN_SOURCE_TOKENS:
            return kept, used, False
        best = draft.sources[0]
        budget = room - self.source_cost(1, replace(best, text=""))
        if draft.source_tokens > 0:
            budget = min(budget, draft.source_tokens)
        while budget >= MIN_SOURCE_TOKENS:
            shorter = cut_sources(draft.question, [best], budget, self.count_text)
            if not shorter:
                break
            cost = self.source_cost(1, shorter[0])
            if cost <= room:
                return shorter, cost, True
            budget -= cost - room  # the text's pieces cost more together than apart
        return [], 0, False


def fit_to_context(
    system: ChatMessage | None,
    history: Sequence[ChatMessage],
    draft: TurnDraft,
    *,
    examples: Sequence[ChatMessage] = (),
    count_chat_tokens: Counter,
    count_tokens: Callable[[str], int],
    n_ctx: int,
    max_tokens: int,
) -> ContextPlan:
    """Choose what to send for one turn (see the module docstring for the order).

    ``examples`` are few-shot turns as alternating user/assistant messages; ``history`` the
    conversation so far (user/assistant messages, oldest first). Costs are estimated per part
    with the backend's own token counts, then the real prompt is counted and trimmed further if
    the chat template adds more than the estimate.
    """
    fit = _Fitter(system, draft, count_chat_tokens, count_tokens, n_ctx, max_tokens)
    input_text = draft.input_text
    input_chars: tuple[int, int] | None = None
    core = fit.count([*fit.head, fit.turn([], input_text)])
    if core > fit.budget:
        if input_text is None:
            what = "the system prompt and this message" if fit.head else "this message"
            if core + MIN_REPLY_TOKENS <= n_ctx:  # the turn alone fits: send just it
                alone = fit.messages([], [], [], input_text)
                pairs_given = (len(examples) + 1) // 2
                return _plan(fit, alone, [], core, 0, pairs_given, len(draft.sources), len(history))
            raise ContextOverflowError(
                f"prompt too long: {what} take {core} tokens but the model's context holds "
                f"{n_ctx} (with {MIN_REPLY_TOKENS} for the reply); shorten it or raise "
                "model.n_ctx"
            )
        input_text, input_chars = fit.cut_input()
        core = fit.count([*fit.head, fit.turn([], input_text)])
    room = fit.budget - core

    sources, used, shortened = fit.pick_sources(room)
    room -= used

    base = fit.count(fit.head)
    pairs = [list(examples[i : i + 2]) for i in range(0, len(examples), 2)]
    kept_pairs: list[list[ChatMessage]] = []
    for pair in reversed(pairs):  # the examples nearest the turn are kept first
        cost = fit.count([*fit.head, *pair]) - base
        if cost > room:
            break
        kept_pairs.insert(0, pair)
        room -= cost

    groups = _exchanges(history)
    kept_groups: list[list[ChatMessage]] = []
    for group in reversed(groups):  # newest first, whole exchanges
        cost = fit.count([*fit.head, *group]) - base
        if cost > room:
            break
        kept_groups.insert(0, group)
        room -= cost

    # The per-part estimates miss a few template tokens; trust the real count and trim more.
    while True:
        kept_history = [m for g in kept_groups for m in g]
        kept_examples = [m for p in kept_pairs for m in p]
        messages = fit.messages(kept_history, kept_examples, sources, input_text)
        prompt_tokens = fit.count(messages)
        if prompt_tokens <= fit.budget:
            break
        if kept_groups:
            kept_groups.pop(0)
        elif kept_pairs:
            kept_pairs.pop(0)
        elif len(sources) > 1:
            sources = sources[:-1]
        else:
            break  # system + turn (+ the best source) fit by their own count: send them
    plan = _plan(
        fit,
        messages,
        sources,
        prompt_tokens,
        len(kept_pairs),
        len(pairs) - len(kept_pairs),
        len(draft.sources) - len(sources),
        len(history) - sum(len(g) for g in kept_groups),
    )
    plan.shortened_source = shortened and bool(sources)
    plan.input_chars = input_chars
    return plan


def _plan(
    fit: _Fitter,
    messages: list[ChatMessage],
    sources: list[Source],
    prompt_tokens: int,
    shown_examples: int,
    dropped_examples: int,
    dropped_sources: int,
    dropped_messages: int,
) -> ContextPlan:
    return ContextPlan(
        messages=messages,
        prompt_tokens=prompt_tokens,
        n_ctx=fit.n_ctx,
        max_reply_tokens=max(1, min(fit.max_tokens, fit.n_ctx - prompt_tokens)),
        sources=sources,
        dropped_messages=dropped_messages,
        dropped_examples=dropped_examples,
        shown_examples=shown_examples,
        dropped_sources=dropped_sources,
    )


def plain_turn(text: str) -> TurnDraft:
    """A turn that is exactly ``text`` (a chat message): nothing to add, nothing to cut."""
    return TurnDraft(render=lambda sources, input_text: text)


def fit_tool_results(
    messages: list[ChatMessage], count: Counter, n_ctx: int, max_tokens: int
) -> tuple[list[ChatMessage], bool]:
    """The messages of a turn that called tools, with its tool results cut (longest first, to
    half each time, marked) until the prompt and the reply's room fit in ``n_ctx``; the bool
    says whether anything was cut. When even results of a few characters do not fit it raises
    ContextOverflowError, as an oversized turn does."""
    limit = n_ctx - reply_reserve(max_tokens, n_ctx)
    out = list(messages)
    cut = False
    while count(out) > limit:
        tools = [i for i, m in enumerate(out) if m.role == "tool" and len(m.content) > 64]
        if not tools:
            raise ContextOverflowError(
                f"the tool results do not fit in the context ({count(out):,} tokens of {limit:,})"
            )
        i = max(tools, key=lambda j: len(out[j].content))
        content = out[i].content
        out[i] = replace(out[i], content=content[: len(content) // 2] + TRUNCATION_MARK)
        cut = True
    return out, cut

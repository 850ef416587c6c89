"""The token loop of the in-process llama.cpp backend (a part of llama_cpp.py).

One reply: llama-cpp-python's ``generate`` samples tokens, each is turned into text (bytes of a
character split across tokens wait for the rest), stop texts end it, and for a model that thinks
the text goes through a ``ReasoningSplitter``: thinking comes out as ``ReasoningEvent``s, the
answer as ``TokenEvent``s, and the reply's stop sequences apply to the answer only. A grammar or
JSON schema constrains the answer only: while the model thinks it samples freely; when the
answer begins, generation continues from that token under the grammar (the answer text sampled
before that point is dropped). The KV cache holds the prompt and the kept tokens, so the
restart evaluates at most one token. ``max_tokens`` counts the whole reply; under a grammar,
thinking that has used half of it is closed (the format's closing text is appended) so the
constrained answer keeps the other half.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatapp.domain import (
    CancelToken,
    DoneEvent,
    GenerationParams,
    GenerationStats,
    ReasoningEvent,
    StreamEvent,
    TokenEvent,
)
from chatapp.engine.reasoning import ReasoningFormat, ReasoningSplitter
from chatapp.engine.stop_sequences import StopMatcher

log = logging.getLogger(__name__)


@dataclass
class ReplyPlan:
    """Everything one reply needs, checked before the stream starts."""

    tokens: list[int]
    params: GenerationParams
    stops: list[str]
    """Texts that end the reply wherever they appear (end-of-turn markers)."""
    answer_stops: list[str] = field(default_factory=list)
    """Stop sequences of the caller, matched in the answer (with ``stops`` when no thinking)."""
    grammar: Any = None
    reasoning: ReasoningFormat | None = None
    generation_prompt: str = ""
    """The end of the prompt, where the reply starts (a template may open a think block)."""


class TokenLoop:
    """Generates replies on one ``llama_cpp.Llama`` (the caller holds the model's lock)."""

    def __init__(self, llm: Any, *, n_ctx: int, eval_sizes: list[int]) -> None:
        self.llm = llm
        self.tokenize = llm.tokenize
        self.vocab = llm._model.vocab
        self.n_ctx = n_ctx
        self.eval_sizes = eval_sizes
        self.stop_ids: set[int] = set()
        """Tokens that end the reply besides llama.cpp's end-of-generation tokens."""
        self.continue_ids: set[int] = set()
        """End-of-generation tokens that do not end a reply in this format (gpt-oss <|end|>)."""
        self.text_ids: set[int] = set()
        """Special tokens rendered as their text (thinking markers the splitter reads)."""
        self._piece_cache: dict[int, bytes] = {}

    def piece(self, token: int) -> bytes:
        """Bytes of one token (special tokens render as nothing unless in ``text_ids``)."""
        piece = self._piece_cache.get(token)
        if piece is None:
            import llama_cpp

            special = token in self.text_ids
            size = 64
            while True:
                buf = ctypes.create_string_buffer(size)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, size, 0, special)
                if n >= 0:
                    piece = buf.raw[:n]
                    break
                size = -n
            self._piece_cache[token] = piece
        return piece

    def cached_prefix(self, tokens: Sequence[int]) -> int:
        """Prompt tokens llama-cpp-python's generate() will take from the KV cache (it keeps
        the longest common prefix, re-evaluating one token when the whole prompt matches)."""
        common = 0
        for a, b in zip(self.llm._input_ids.tolist(), tokens, strict=False):
            if a != b:
                break
            common += 1
        return min(common, len(tokens) - 1) if tokens else 0

    def run(self, plan: ReplyPlan, cancel: CancelToken | None) -> Iterator[StreamEvent]:
        return _Reply(self, plan, cancel).events()


class _Reply:
    """The state of one reply while it streams."""

    def __init__(self, loop: TokenLoop, plan: ReplyPlan, cancel: CancelToken | None) -> None:
        self.loop, self.plan, self.cancel = loop, plan, cancel
        self.stats = GenerationStats(prompt_tokens=len(plan.tokens), n_ctx=loop.n_ctx)
        self.splitter = (
            ReasoningSplitter(plan.reasoning, plan.generation_prompt) if plan.reasoning else None
        )
        self.stopper = StopMatcher(
            plan.stops if self.splitter else [*plan.answer_stops, *plan.stops]
        )
        self.answer_stopper = StopMatcher(plan.answer_stops) if self.splitter else None
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # The grammar waits for the answer when the reply may think first.
        in_answer = self.splitter is None or self.splitter.in_answer
        self.grammar = plan.grammar if in_answer else None
        self.deferred = None if in_answer else plan.grammar
        self.kept: list[int] = []
        self.answer_at: int | None = 0 if in_answer else None
        self.answer_started_at = 0.0
        self.stop_hit = False

    def events(self) -> Iterator[StreamEvent]:
        plan, loop, stats = self.plan, self.loop, self.stats
        started = time.perf_counter()
        if self.cancel is not None and self.cancel.cancelled:
            yield DoneEvent(stats=stats, finish_reason="cancelled")
            return
        predicted_cached = loop.cached_prefix(plan.tokens)
        loop.eval_sizes.clear()
        max_new = min(plan.params.max_tokens, max(0, loop.n_ctx - len(plan.tokens)))
        params = plan.params
        seed = params.seed if params.seed is not None else random.randrange(2**31 - 1)
        loop.llm.set_seed(seed)
        finish, error = "length", None
        sampled = 0
        first_at = last_at = 0.0
        import llama_cpp

        # Locals for the per-token path: it runs once per token, beside llama.cpp's decode.
        is_eog, vocab = llama_cpp.llama_vocab_is_eog, loop.vocab
        stop_ids, continue_ids, piece = loop.stop_ids, loop.continue_ids, loop.piece
        kept, cancel, plain = self.kept, self.cancel, self.splitter is None
        while True:
            restart = False
            generator = loop.llm.generate(
                plan.tokens + kept,
                top_k=params.top_k,
                top_p=params.top_p,
                min_p=params.min_p,
                temp=params.temperature,
                repeat_penalty=params.repeat_penalty,
                grammar=self.grammar,
            )
            decode = self.decoder.decode
            try:
                for token in generator if len(kept) < max_new else ():
                    last_at = time.perf_counter()
                    sampled += 1
                    if sampled == 1:
                        first_at = last_at
                    if token in stop_ids or (token not in continue_ids and is_eog(vocab, token)):
                        finish = "stop"
                        break
                    kept.append(token)
                    text = decode(piece(token))
                    if text:
                        if plain:
                            out, self.stop_hit = self.stopper.feed(text)
                            if out:
                                yield TokenEvent(out)
                        else:
                            yield from self._text(text)
                        if self.stop_hit:
                            finish = "stop"
                            break
                    if self.deferred is not None and self.splitter is not None:
                        if self.splitter.in_reasoning and len(kept) >= max_new // 2:
                            self._close_thinking()
                        if self.splitter.in_answer:
                            self._start_answer(last_at)
                            restart = True
                            break
                    if len(kept) >= max_new:
                        finish = "length"
                        break
                    if cancel is not None and cancel.cancelled:
                        finish = "cancelled"
                        break
            except Exception as exc:  # llama.cpp decode failures: end the stream, keep the text
                finish, error = "error", f"llama.cpp failed while generating ({exc})"
                log.exception("generation failed")
            finally:
                generator.close()
            if not restart:
                break
            if len(self.kept) >= max_new:
                finish = "length"
                break
        if not self.stop_hit:
            # Bytes of a character cut off by the end, and text held back for a stop string
            # that never completed, belong to the reply.
            tail = self.stopper.feed(self.decoder.decode(b"", final=True))[0]
            yield from self._text(tail + self.stopper.flush(), final=True)
        ended = time.perf_counter()
        evaluated = loop.eval_sizes[0] if loop.eval_sizes else len(plan.tokens) - predicted_cached
        stats.cached_tokens = max(0, len(plan.tokens) - evaluated)
        stats.completion_tokens = len(self.kept)
        stats.ttft_s = (first_at or ended) - started
        stats.total_s = ended - started
        decode_s = last_at - first_at
        stats.decode_tokens_per_s = (
            (sampled - 1) / decode_s if sampled > 1 and decode_s > 0 else 0.0
        )
        if self.splitter is not None and self.splitter.reasoned:
            if self.answer_at is None:  # the reply ended while thinking
                self.answer_at, self.answer_started_at = len(self.kept), last_at
            stats.reasoning_tokens = self.answer_at
            stats.reasoning_s = max(0.0, (self.answer_started_at or last_at) - first_at)
        yield DoneEvent(stats=stats, finish_reason=finish, error=error)  # type: ignore[arg-type]

    def _text(self, text: str, final: bool = False) -> Iterator[StreamEvent]:
        """Events for decoded reply text (``final``: the end of the reply, flush everything)."""
        if self.splitter is None:
            if final:
                if text:
                    yield TokenEvent(text)
                return
            out, self.stop_hit = self.stopper.feed(text)
            if out:
                yield TokenEvent(out)
            return
        if not final:
            text, self.stop_hit = self.stopper.feed(text)
        pieces = self.splitter.feed(text) if text else []
        if final:
            pieces += self.splitter.flush()
        for piece in pieces:
            if isinstance(piece, ReasoningEvent):
                yield piece
            elif self.deferred is None and self.answer_stopper is not None:
                self._mark_answer()
                out, hit = self.answer_stopper.feed(piece.text)
                if out:
                    yield TokenEvent(out)
                if hit:
                    self.stop_hit = True
                    return
        if final and self.answer_stopper is not None and not self.stop_hit:
            rest = self.answer_stopper.flush()
            if rest:
                yield TokenEvent(rest)
        if self.splitter.in_answer and self.deferred is None:
            self._mark_answer()

    def _mark_answer(self) -> None:
        if self.answer_at is None:
            self.answer_at = len(self.kept)
            self.answer_started_at = time.perf_counter()

    def _close_thinking(self) -> None:
        """End a thinking block the model has kept open too long for a constrained answer."""
        assert self.splitter is not None and self.plan.reasoning is not None
        closing = self.plan.reasoning.closing_text
        self.kept += self.loop.tokenize(closing.encode("utf-8"), add_bos=False, special=True)
        self.splitter.feed(closing)  # held-back thinking text, if any, is dropped with it

    def _start_answer(self, now: float) -> None:
        """The answer begins: continue under the grammar from here. After a thinking block the
        tokens so far stay (markers included); a reply that did not think starts over."""
        assert self.splitter is not None
        if not self.splitter.reasoned:
            self.kept.clear()
            self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.answer_at, self.answer_started_at = len(self.kept), now
        self.stopper = StopMatcher(self.plan.stops)
        self.grammar, self.deferred = self.deferred, None

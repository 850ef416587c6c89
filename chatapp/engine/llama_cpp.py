"""Run a GGUF model in-process with llama.cpp (through llama-cpp-python).

``LlamaCppBackend`` loads any GGUF (its header is checked first so a bad file gets a one-line
error), formats chats with the model's own template, and streams replies token by token with
stop sequences, sampling settings, a seed, optional GBNF grammar / JSON schema constraints and
cancellation between tokens. The KV cache is kept between calls: llama-cpp-python's ``generate``
reuses the longest common token prefix, so the next turn of a conversation only evaluates what
is new. Only this module imports llama_cpp.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import io
import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chatapp.config import ModelSettings
from chatapp.domain import (
    CancelToken,
    ChatMessage,
    DoneEvent,
    GenerationParams,
    GenerationStats,
    ModelIdentity,
    StreamEvent,
    TokenEvent,
)
from chatapp.engine.base import LoadProgress
from chatapp.engine.chat_formats import ChatTemplate, render_chat, select_template
from chatapp.engine.llama_loading import (
    cpu_has_amx,
    default_gpu_layers,
    load_lock,
    model_params_hook,
    recent_errors,
    route_llama_logs,
    usable_cores,
)
from chatapp.engine.model_identity import Sha256Job, identity_from_gguf
from chatapp.engine.stop_sequences import StopMatcher
from chatapp.errors import ContextOverflowError, ModelLoadError, UsageError
from chatapp.models.gguf import GGUFInfo, validate_gguf

log = logging.getLogger(__name__)


class LlamaCppBackend:
    """A GGUF model loaded in this process. One generation at a time (others wait)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        settings: ModelSettings | None = None,
        *,
        name: str | None = None,
        on_progress: LoadProgress | None = None,
        seed: int | None = None,
    ) -> None:
        settings = settings or ModelSettings.model_validate({})
        self.path = Path(path).expanduser()
        progress = on_progress or (lambda fraction, text: None)
        progress(0.0, f"checking {self.path.name}")
        self.info: GGUFInfo = validate_gguf(self.path)
        trained = self.info.context_length or settings.n_ctx
        self._n_ctx = max(16, min(trained, settings.n_ctx))
        self.n_threads = settings.n_threads or usable_cores()
        progress(0.1, f"loading {self.path.name}")
        started = time.perf_counter()
        self._eval_sizes: list[int] = []
        self._llm = self._load(settings, seed, progress)
        self.load_s = time.perf_counter() - started
        self._vocab = self._llm._model.vocab
        self._piece_cache: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self.template: ChatTemplate = select_template(
            self.info.chat_template,
            architecture=self.info.architecture,
            name=self.info.name or self.path.stem,
            bos_token=self.info.bos_token,
            eos_token=self.info.eos_token,
            vocab_size=self.info.vocab_size,
        )
        self._stop_token_ids = self._end_of_turn_token_ids()
        self.prefix_stable = self._check_prefix_stable()
        self._name = name
        self._sha = Sha256Job(self.path)
        progress(1.0, f"{self.path.name} ready")

    # -- loading ---------------------------------------------------------------------------

    def _load(self, settings: ModelSettings, seed: int | None, progress: LoadProgress) -> Any:
        import llama_cpp

        route_llama_logs()
        n_gpu_layers = settings.n_gpu_layers
        if n_gpu_layers is None:
            n_gpu_layers = default_gpu_layers()
        self.n_gpu_layers = n_gpu_layers
        kwargs: dict[str, Any] = dict(
            n_ctx=self._n_ctx,
            n_batch=min(settings.n_batch, self._n_ctx),
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            n_gpu_layers=n_gpu_layers,
            main_gpu=settings.main_gpu,
            tensor_split=settings.tensor_split,
            # verbose=True only stops llama-cpp-python from pointing the process's stdout and
            # stderr file descriptors at /dev/null while loading (which blanks a Textual screen
            # drawn from another thread); its C logs go to Python logging (_route_llama_logs)
            # and its own Python prints are swallowed below.
            verbose=True,
        )
        if seed is not None:
            kwargs["seed"] = seed
        recent_errors.clear()
        sink = io.StringIO()
        try:
            with (
                load_lock,
                model_params_hook(progress, use_extra_buffers=not cpu_has_amx()),
                contextlib.redirect_stderr(sink),
                contextlib.redirect_stdout(sink),
            ):
                llm = llama_cpp.Llama(str(self.path), **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            reason = recent_errors[-1] if recent_errors else str(exc)
            raise ModelLoadError(self.path, f"llama.cpp could not load it ({reason})") from None
        llm.verbose = False  # no per-call prints from generate()
        # Count what generate() really sends to llama_decode: its first eval of a reply is the
        # part of the prompt that was not in the KV cache (stats.cached_tokens is measured).
        original_eval = llm.eval
        evals = self._eval_sizes

        def counting_eval(tokens: Sequence[int]) -> None:
            evals.append(len(tokens))
            original_eval(tokens)

        llm.eval = counting_eval  # type: ignore[method-assign]
        return llm

    def _check_prefix_stable(self) -> bool:
        """Whether the template renders earlier turns identically as a chat grows; when it does
        not (some templates rewrite history), each turn re-evaluates part of the history."""
        try:
            stable = self.template.is_prefix_stable()
        except Exception:
            stable = False
        if not stable:
            log.info(
                "model %s: its chat template rewrites earlier turns; less KV-cache reuse",
                self.path.name,
            )
        return stable

    def _end_of_turn_token_ids(self) -> set[int]:
        """Token ids that end the assistant's turn: the end-of-turn markers of the template,
        when each is a single token of the vocabulary (llama.cpp's own end-of-generation
        tokens are checked separately)."""
        ids: set[int] = set()
        for marker in self.template.end_of_turn:
            tokens = self._llm.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) == 1:
                ids.add(tokens[0])
        return ids

    # -- the Backend protocol ----------------------------------------------------------------

    @property
    def identity(self) -> ModelIdentity:
        return identity_from_gguf(self.info, name=self._name, sha256=self._sha.result)

    def model_sha256(self) -> str | None:
        """The model file's sha256, waiting for the background hashing if it is still running."""
        return self._sha.wait()

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (for benchmarks and diagnostics)."""
        return self._llm

    def format_chat(self, messages: Sequence[ChatMessage]) -> str:
        try:
            return render_chat(self.template, messages)
        except Exception as exc:
            raise UsageError(
                f"chat template of {self.path.name}: fails on this chat ({exc})"
            ) from None

    def tokenize_prompt(self, prompt: str) -> list[int]:
        """Prompt text -> tokens, special tokens parsed, BOS added only if the template did not."""
        bos = self.info.bos_token or ""
        add_special = not (bos and prompt.startswith(bos))
        return self._llm.tokenize(prompt.encode("utf-8"), add_bos=add_special, special=True)

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_chat_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self.tokenize_prompt(self.format_chat(messages)))

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[StreamEvent]:
        # Everything the user can get wrong is checked before the stream starts.
        tokens = self.tokenize_prompt(self.format_chat(messages))
        if len(tokens) >= self._n_ctx:
            raise ContextOverflowError(
                f"prompt too long: {len(tokens)} tokens but the model's context holds "
                f"{self._n_ctx}; shorten it or raise model.n_ctx"
            )
        grammar = self._compile_grammar(params)
        stops = [*params.stop, *self.template.end_of_turn]
        return self._stream(tokens, params, stops, grammar, cancel)

    def stream_tokens(
        self, tokens: Sequence[int], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        """Stream a reply to already-tokenized prompt text (benchmarks, raw completion)."""
        grammar = self._compile_grammar(params)
        return self._stream(list(tokens), params, [*params.stop], grammar, cancel)

    def close(self) -> None:
        self._sha.stop()
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    # -- generation ----------------------------------------------------------------------------

    def _compile_grammar(self, params: GenerationParams) -> Any:
        """A LlamaGrammar for params.grammar / params.json_schema, checked by llama.cpp itself
        (an invalid grammar would otherwise crash the sampler)."""
        if not params.grammar and not params.json_schema:
            return None
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

        if params.grammar:
            what, text = "grammar", params.grammar
        else:
            what = "JSON schema"
            try:
                text = json_schema_to_gbnf(json.dumps(params.json_schema))
            except Exception as exc:
                raise UsageError(f"JSON schema: cannot be turned into a grammar ({exc})") from None
        recent_errors.clear()
        sampler = llama_cpp.llama_sampler_init_grammar(self._vocab, text.encode("utf-8"), b"root")
        if not sampler:
            reason = recent_errors[-1] if recent_errors else "llama.cpp rejected it"
            raise UsageError(f"{what}: not valid GBNF ({reason})")
        llama_cpp.llama_sampler_free(sampler)
        return LlamaGrammar.from_string(text, verbose=False)

    def _piece(self, token: int) -> bytes:
        """Bytes of one token (special tokens render as nothing), cached per token id."""
        piece = self._piece_cache.get(token)
        if piece is None:
            import llama_cpp

            size = 64
            while True:
                buf = ctypes.create_string_buffer(size)
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
                if n >= 0:
                    piece = buf.raw[:n]
                    break
                size = -n
            self._piece_cache[token] = piece
        return piece

    def _cached_prefix(self, tokens: Sequence[int]) -> int:
        """Prompt tokens llama-cpp-python's generate() will take from the KV cache (it keeps
        the longest common prefix, re-evaluating one token when the whole prompt matches)."""
        llm = self._llm
        common = 0
        for a, b in zip(llm._input_ids.tolist(), tokens, strict=False):
            if a != b:
                break
            common += 1
        return min(common, len(tokens) - 1) if tokens else 0

    def _stream(
        self,
        tokens: list[int],
        params: GenerationParams,
        stops: list[str],
        grammar: Any,
        cancel: CancelToken | None,
    ) -> Iterator[StreamEvent]:
        with self._lock:
            self._sha.may_run.clear()  # the hashing thread steps aside while we decode
            try:
                yield from self._generate(tokens, params, stops, grammar, cancel)
            finally:
                self._sha.may_run.set()

    def _generate(
        self,
        tokens: list[int],
        params: GenerationParams,
        stops: list[str],
        grammar: Any,
        cancel: CancelToken | None,
    ) -> Iterator[StreamEvent]:
        import llama_cpp

        llm = self._llm
        if llm is None:
            raise ModelLoadError(self.path, "closed")
        started = time.perf_counter()
        stats = GenerationStats(prompt_tokens=len(tokens), n_ctx=self._n_ctx)
        if cancel is not None and cancel.cancelled:
            yield DoneEvent(stats=stats, finish_reason="cancelled")
            return
        predicted_cached = self._cached_prefix(tokens)
        self._eval_sizes.clear()
        room = max(0, self._n_ctx - len(tokens))
        max_new = min(params.max_tokens, room)
        seed = params.seed if params.seed is not None else random.randrange(2**31 - 1)
        llm.set_seed(seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stopper = StopMatcher(stops)
        finish = "length"
        error: str | None = None
        sampled = produced = 0
        first_at = last_at = 0.0
        stop_ids = self._stop_token_ids
        vocab = self._vocab
        generator = llm.generate(
            tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
            grammar=grammar,
        )
        stop_hit = False
        try:
            for token in generator if max_new > 0 else ():
                last_at = time.perf_counter()
                sampled += 1
                if sampled == 1:
                    first_at = last_at
                if token in stop_ids or llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                produced += 1
                text = decoder.decode(self._piece(token))
                if text:
                    out, stop_hit = stopper.feed(text)
                    if out:
                        yield TokenEvent(out)
                    if stop_hit:
                        finish = "stop"
                        break
                if produced >= max_new:
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
        if not stop_hit:
            # Bytes of a character cut off by the end, and text held back for a stop string
            # that never completed, belong to the reply.
            tail = stopper.feed(decoder.decode(b"", final=True))[0] + stopper.flush()
            if tail:
                yield TokenEvent(tail)
        ended = time.perf_counter()
        evaluated = self._eval_sizes[0] if self._eval_sizes else len(tokens) - predicted_cached
        stats.cached_tokens = max(0, len(tokens) - evaluated)
        stats.completion_tokens = produced
        stats.ttft_s = (first_at or ended) - started
        stats.total_s = ended - started
        decode_s = last_at - first_at
        stats.decode_tokens_per_s = (
            (sampled - 1) / decode_s if sampled > 1 and decode_s > 0 else 0.0
        )
        yield DoneEvent(stats=stats, finish_reason=finish, error=error)  # type: ignore[arg-type]

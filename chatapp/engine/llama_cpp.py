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
import functools
import io
import json
import logging
import os
import random
import threading
import time
from collections import deque
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
from chatapp.engine.chat_formats import ChatTemplate, select_template
from chatapp.engine.model_identity import Sha256Job, identity_from_gguf
from chatapp.errors import ContextOverflowError, ModelLoadError, UsageError
from chatapp.models.gguf import GGUFInfo, validate_gguf

log = logging.getLogger(__name__)
_llama_log = logging.getLogger("chatapp.llama_cpp")

# ggml_log_level (ggml.h): 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line.
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_ERROR, _CONT = 4, 5
_last_level = [logging.DEBUG]
_recent_errors: deque[str] = deque(maxlen=8)
_log_callback: Any = None
_load_lock = threading.Lock()


def _route_llama_logs() -> None:
    """Send llama.cpp's own log lines to Python logging instead of the terminal (the Textual
    screen must not be scribbled on) and remember recent errors for load-failure messages."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", "replace").rstrip()
        py_level = _last_level[0] if level == _CONT else _LEVELS.get(level, logging.DEBUG)
        _last_level[0] = py_level
        if not line:
            return
        if py_level >= logging.ERROR:
            _recent_errors.append(line)
        _llama_log.log(py_level, "%s", line)

    _log_callback = on_log  # keep a reference: llama.cpp holds only the C pointer
    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))


def usable_cores() -> int:
    """CPU cores this process may run on (respects taskset / container CPU limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_gpu_layers() -> int:
    """All layers (-1) when llama.cpp was built with a GPU backend, else 0."""
    import llama_cpp

    return -1 if llama_cpp.llama_supports_gpu_offload() else 0


@functools.cache
def cpu_has_amx() -> bool:
    """Whether llama.cpp's CPU backend would use Intel AMX tiles."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return "AMX_INT8 = 1" in info


@contextlib.contextmanager
def _model_params_hook(progress: LoadProgress, *, use_extra_buffers: bool) -> Iterator[None]:
    """Adjust the model params that ``llama_cpp.Llama`` builds internally (it has no arguments
    for these): a load-progress callback, and the switch for llama.cpp's extra CPU buffer types.

    Extra buffer types are turned off on CPUs with AMX: on the virtual machines we measured, the
    AMX buffer type crashes llama.cpp (segfault in the first decode); the plain CPU path works.
    """
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params

    @low.llama_progress_callback
    def on_progress(fraction: float, user_data: ctypes.c_void_p) -> bool:
        with contextlib.suppress(Exception):
            progress(0.1 + 0.85 * float(fraction), "loading weights")
        return True

    def patched() -> Any:
        params = original()
        params.progress_callback = on_progress
        if not use_extra_buffers:
            params.use_extra_bufts = False
        return params

    low.llama_model_default_params = patched
    try:
        yield
    finally:
        low.llama_model_default_params = original


class StopMatcher:
    """Finds stop strings in streamed text, holding back only text that could still become one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show now, whether a stop string was reached)."""
        self.pending += text
        if not self.stops:
            out, self.pending = self.pending, ""
            return out, False
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out = self.pending[: min(hits)]
            self.pending = ""
            return out, True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


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
        settings = settings or ModelSettings()
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
        self._name = name
        self._sha = Sha256Job(self.path)
        progress(1.0, f"{self.path.name} ready")

    # -- loading ---------------------------------------------------------------------------

    def _load(self, settings: ModelSettings, seed: int | None, progress: LoadProgress) -> Any:
        import llama_cpp

        _route_llama_logs()
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
        _recent_errors.clear()
        sink = io.StringIO()
        try:
            with (
                _load_lock,
                _model_params_hook(progress, use_extra_buffers=not cpu_has_amx()),
                contextlib.redirect_stderr(sink),
                contextlib.redirect_stdout(sink),
            ):
                llm = llama_cpp.Llama(str(self.path), **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            reason = _recent_errors[-1] if _recent_errors else str(exc)
            raise ModelLoadError(self.path, f"llama.cpp could not load it ({reason})") from None
        llm.verbose = False  # no per-call prints from generate()
        # Count what generate() really sends to llama_decode: its first eval of a reply is the
        # part of the prompt that was not in the KV cache (stats.cached_tokens is measured).
        original_eval = llm.eval
        evals = self._eval_sizes

        def counting_eval(tokens: Sequence[int]) -> None:
            evals.append(len(tokens))
            original_eval(tokens)

        llm.eval = counting_eval
        return llm

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
            return self.template.render(messages)
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
        _recent_errors.clear()
        sampler = llama_cpp.llama_sampler_init_grammar(self._vocab, text.encode("utf-8"), b"root")
        if not sampler:
            reason = _recent_errors[-1] if _recent_errors else "llama.cpp rejected it"
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

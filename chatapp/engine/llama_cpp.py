"""Run a GGUF model in-process with llama.cpp (through llama-cpp-python).

``LlamaCppBackend`` loads any GGUF (its header is checked first so a bad file gets a one-line
error), formats chats with the model's own template, and streams replies token by token with
stop sequences, sampling settings, a seed, optional GBNF grammar / JSON schema constraints and
cancellation between tokens. Only the template's own markup is tokenized with special tokens;
text inside messages is plain text (llama_tokens.py). A model that thinks streams its thinking
as ``ReasoningEvent``s apart from the answer, and the thinking switch of its template is set
from ``GenerationParams.thinking`` (llama_generation.py runs the token loop). The KV cache is
kept between calls: llama-cpp-python's ``generate`` reuses the longest common token prefix, so
the next turn of a conversation only evaluates what is new. Only this module and its llama_*
helpers import llama_cpp.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chatapp.config import ModelSettings
from chatapp.domain import (
    CancelToken,
    ChatMessage,
    GenerationParams,
    ModelIdentity,
    StreamEvent,
)
from chatapp.engine.base import LoadProgress
from chatapp.engine.chat_formats import ChatTemplate, resolve_chat, select_template
from chatapp.engine.control_tokens import unmark
from chatapp.engine.kv_state_cache import StateOwner, WarmResume
from chatapp.engine.llama_generation import ReplyPlan, TokenLoop
from chatapp.engine.llama_loading import (
    cpu_has_amx,
    default_gpu_layers,
    load_lock,
    model_params_hook,
    recent_errors,
    route_llama_logs,
    usable_cores,
    without_library_chat_templates,
)
from chatapp.engine.llama_threads import LlamaThreads, model_key
from chatapp.engine.llama_tokens import ChatTokenizer
from chatapp.engine.model_identity import Sha256Job, identity_from_gguf
from chatapp.engine.reasoning import ReasoningFormat, ThinkingSupport
from chatapp.engine.thread_fit import FreeCoreProbe
from chatapp.engine.tool_call_syntax import call_syntax, with_tool_calls
from chatapp.engine.tool_grammar import tool_grammar
from chatapp.engine.tool_prompt import offered, tool_chat
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
        cpu_probe: FreeCoreProbe | None = None,
    ) -> None:
        settings = settings or ModelSettings.model_validate({})
        self.path = Path(path).expanduser()
        progress = on_progress or (lambda fraction, text: None)
        progress(0.0, f"checking {self.path.name}")
        self.info: GGUFInfo = validate_gguf(self.path)
        trained = self.info.context_length or settings.n_ctx
        self._n_ctx = max(16, min(trained, settings.n_ctx))
        self.n_threads = settings.n_threads or usable_cores()
        """The most threads llama.cpp gets: ``model.n_threads`` exactly, else every usable core,
        of which each reply takes those that are free (``threads``)."""
        self.threads = LlamaThreads(
            model_key(self.path, self.n_threads),
            fixed=settings.n_threads,
            ceiling=self.n_threads,
            probe=cpu_probe,
        )
        progress(0.1, f"loading {self.path.name}")
        started = time.perf_counter()
        self._eval_sizes: list[int] = []
        self._llm = self._load(settings, seed, progress)
        self.load_s = time.perf_counter() - started
        self._lock = threading.Lock()
        self._tokenizer = ChatTokenizer(self._llm, self.info.bos_token)
        self.template: ChatTemplate = select_template(
            self.info.chat_template,
            architecture=self.info.architecture,
            name=self.info.name or self.path.stem,
            bos_token=self.info.bos_token,
            eos_token=self.info.eos_token,
            vocab_size=self.info.vocab_size,
            vocabulary=self._tokenizer.vocabulary,
        )
        self.template.control_tokens = self._tokenizer.control_tokens(self.template.source)
        self._loop = TokenLoop(self._llm, n_ctx=self._n_ctx, eval_sizes=self._eval_sizes)
        self._loop.stop_ids = self._end_of_turn_token_ids()
        self._configure_reasoning(self.template.thinking.format)
        self.tool_syntax = call_syntax(self.template.source, "tools" in self.template.variables)
        self._configure_tool_markers()
        self.prefix_stable = self._check_prefix_stable()
        self._name = name
        self._sha = Sha256Job(self.path)
        self._resume = WarmResume(
            self._llm,
            self._lock,
            self._n_ctx,
            lambda wait: self._sha.wait() if wait else self._sha.result,
            settings.kv_cache_mb * 2**20,
        )
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
            n_threads=self.threads.initial,
            n_threads_batch=self.threads.initial,
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
                without_library_chat_templates(),
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
        # Each one-token decode is timed for the thread fit (llama_threads.py).
        self.threads.attach(llm)
        original_eval = self.threads.timed_eval(llm.eval)
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
        ids = {self._tokenizer.single_token(m) for m in self.template.end_of_turn}
        return {i for i in ids if i is not None}

    def _configure_reasoning(self, fmt: ReasoningFormat | None) -> None:
        """Thinking markers render as text for the splitter; in the harmony format (gpt-oss)
        ``<|end|>`` closes the thinking part and must not end the reply."""
        if fmt is None:
            return
        for marker in fmt.markers:
            token = self._tokenizer.single_token(marker)
            if token is not None:
                self._loop.text_ids.add(token)
        if fmt.style == "harmony":
            end = self._tokenizer.single_token("<|end|>")
            if end is not None:
                self._loop.continue_ids.add(end)
                self._loop.stop_ids.discard(end)

    def _configure_tool_markers(self) -> None:
        """The texts that open and close a call render as text, for the call parser."""
        for marker in self.tool_syntax.markers if self.tool_syntax else ():
            token = self._tokenizer.single_token(marker)
            if token is not None:
                self._loop.text_ids.add(token)

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

    @property
    def thinking(self) -> ThinkingSupport:
        """Whether this model thinks, and what of it ``GenerationParams`` can switch."""
        return self.template.thinking

    def format_chat(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> str:
        """The exact prompt text the model receives (with ``params``' thinking setting)."""
        return self._prompt(messages, params).text

    def tokenize_prompt(self, prompt: str) -> list[int]:
        """Trusted prompt text -> tokens, special tokens parsed everywhere, BOS added only if the
        text does not start with it (benchmarks and raw completion; chats use tokenize_chat)."""
        return self._tokenizer.tokenize_chat(prompt, None)

    def tokenize_chat(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> list[int]:
        """The tokens sent for ``messages``: the template's markup as special tokens, the text
        of every message as plain text."""
        return self._prompt(messages, params).tokens

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_chat_tokens(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> int:
        return len(self._prompt(messages, params).tokens)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[StreamEvent]:
        # Everything the user can get wrong is checked before the stream starts.
        prompt = self._prompt(messages, params)
        if len(prompt.tokens) >= self._n_ctx:
            raise ContextOverflowError(
                f"prompt too long: {len(prompt.tokens)} tokens but the model's context holds "
                f"{self._n_ctx}; shorten it or raise model.n_ctx"
            )
        plan = ReplyPlan(
            tokens=prompt.tokens,
            params=params,
            stops=list(prompt.template.end_of_turn),
            answer_stops=list(params.stop),
            grammar=self._compile_grammar(params),
            reasoning=prompt.template.thinking.format,
            generation_prompt=prompt.generation_prompt,
        )
        if self.tool_syntax is not None and offered(params.tools, params.tool_choice):
            return with_tool_calls(self._stream(plan, cancel), self.tool_syntax)
        return self._stream(plan, cancel)

    def stream_tokens(
        self, tokens: Sequence[int], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        """Stream a reply to already-tokenized prompt text (benchmarks, raw completion)."""
        grammar = self._compile_grammar(params)
        plan = ReplyPlan(
            list(tokens), params, stops=[], answer_stops=[*params.stop], grammar=grammar
        )
        return self._stream(plan, cancel)

    def keep_state_for(self, owner: StateOwner) -> None:
        """Whose conversation the KV state saved after the next reply holds (kv_state_files)."""
        self._resume.keep_state_for(owner)

    def close(self) -> None:
        self._resume.wait()  # the KV state of the last reply is written before the model goes
        self._sha.stop()
        with self._lock:
            self._resume.closed()
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    # -- generation ----------------------------------------------------------------------------

    def _compile_grammar(self, params: GenerationParams) -> Any:
        """A LlamaGrammar for params.grammar / params.json_schema, checked by llama.cpp itself
        (an invalid grammar would otherwise crash the sampler)."""
        if not params.grammar and not params.json_schema and params.constrain_tools:
            text = tool_grammar(self.tool_syntax, params.tools, params.tool_choice)
            params = replace(params, grammar=text) if text else params
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
        sampler = llama_cpp.llama_sampler_init_grammar(
            self._llm._model.vocab, text.encode("utf-8"), b"root"
        )
        if not sampler:
            reason = recent_errors[-1] if recent_errors else "llama.cpp rejected it"
            raise UsageError(f"{what}: not valid GBNF ({reason})")
        llama_cpp.llama_sampler_free(sampler)
        return LlamaGrammar.from_string(text, verbose=False)

    def _prompt(self, messages: Sequence[ChatMessage], params: GenerationParams | None) -> _Prompt:
        """Render and tokenize a chat; the thinking switch and effort come from ``params``."""
        variables: dict[str, Any] = {}
        if params is not None:
            constrained = bool(params.grammar or params.json_schema)
            variables = self.template.thinking.template_variables(
                params.thinking, params.reasoning_effort, constrained=constrained
            )
        specs = params.tools if params is not None else []
        choice = params.tool_choice if params is not None else "auto"
        with_tools = tool_chat(messages, specs, choice, self.tool_syntax)
        try:
            template, chat, marked = resolve_chat(
                self.template, with_tools.messages, variables, with_tools.tools
            )
            start = ""
            if template.thinking.thinks:
                start = unmark(
                    template.generation_prompt(chat, variables, full=marked, tools=with_tools.tools)
                )
        except Exception as exc:
            raise UsageError(
                f"chat template of {self.path.name}: fails on this chat ({exc})"
            ) from None
        if self._llm is None:  # llama.cpp would crash on a freed model
            raise ModelLoadError(self.path, "closed")
        tokens = self._tokenizer.tokenize_chat(marked, template.control_tokens)
        return _Prompt(unmark(marked), tokens, template, start)

    def _stream(self, plan: ReplyPlan, cancel: CancelToken | None) -> Iterator[StreamEvent]:
        with self._lock:
            if self._llm is None:
                raise ModelLoadError(self.path, "closed")
            self._sha.may_run.clear()  # the hashing thread steps aside while we decode
            self._resume.before(plan.tokens)  # a conversation read before, in another process
            self.threads.begin_reply()
            try:
                yield from self._loop.run(plan, cancel)
            finally:
                self.threads.end_reply()
                self._sha.may_run.set()
                self._resume.after()


@dataclass
class _Prompt:
    """A rendered chat: the text the model reads, its tokens, and where the reply starts."""

    text: str
    tokens: list[int]
    template: ChatTemplate
    generation_prompt: str

"""A backend that talks to an OpenAI-compatible server: llama.cpp's ``llama-server``,
llama-cpp-python's ``python -m llama_cpp.server``, vLLM, Ollama, or anything speaking
``/v1/chat/completions`` with server-sent events.

Plain httpx, no SDK. What each server understands beyond the OpenAI fields differs, so the
backend looks once at ``GET /models`` (and ``/props`` on llama.cpp) to tell them apart:
llama.cpp-family servers get ``top_k``/``min_p``/``repeat_penalty``/``grammar`` as extra fields,
vLLM gets its own names, other servers only the standard fields.

Thinking: servers that split it off themselves send it as ``reasoning_content`` (llama.cpp's
``--reasoning-format``, vLLM's reasoning parsers, DeepSeek) or ``reasoning`` (Ollama,
OpenRouter); a reply whose text starts with ``<think>…</think>`` is split here. Both stream as
``ReasoningEvent``s. ``GenerationParams.thinking`` goes to llama.cpp and vLLM servers as
``chat_template_kwargs.enable_thinking``, ``reasoning_effort`` as the standard field. On a
llama.cpp server the model's chat template (``/props``) tells whether it thinks.

The server renders and tokenizes the chat itself, parsing special tokens inside message text,
so every message's text is sent defused (``control_tokens.defuse``): a ``<|im_end|>`` typed by
the user or found in a document reaches the model as text, not as the end of a turn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from chatapp.config import Settings
from chatapp.domain import (
    CancelToken,
    ChatMessage,
    DoneEvent,
    GenerationParams,
    ModelIdentity,
    ReasoningEvent,
    StreamEvent,
    ToolCallEvent,
)
from chatapp.engine.control_tokens import defuse_message
from chatapp.engine.openai_request import Flavor, chat_request_body, template_kwargs
from chatapp.engine.openai_stream import (
    MAX_JSON_BODY_BYTES,
    ConnectionSockets,
    Deadlines,
    ReplyClock,
    ReplyLimits,
    ServerReportedError,
    StallGuard,
    StreamProblem,
    Usage,
    one_line,
    parse_chunk,
    read_capped,
    sse_lines,
    sse_payloads,
)
from chatapp.engine.openai_tools import (
    ToolCallAssembler,
    tool_deltas,
    tool_fields,
    wire_message,
)
from chatapp.engine.reasoning import NO_THINKING, THINK, ReasoningSplitter, ThinkingSupport
from chatapp.errors import (
    BackendUnavailableError,
    ChatappError,
    ContextOverflowError,
    ModelNotFoundError,
)

_CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with BPE vocabularies
_PER_MESSAGE_TOKENS = 4  # role markers and separators a chat template adds around each turn
_MAX_N_CTX = 1 << 24  # a context size a server claims beyond this is not believed


class OpenAIBackend:
    """Streams replies from an OpenAI-compatible server; cancellable between chunks.

    Stats use the server's ``usage`` when it sends one (``stream_options.include_usage``);
    otherwise completion tokens are the number of text chunks (one per token, except that a
    character split across tokens arrives as one chunk) and prompt tokens are estimated.

    ``model`` defaults to the first model the server lists. ``n_ctx`` comes from the server
    when it says (llama.cpp's ``/props``, vLLM's ``max_model_len``), else ``fallback_n_ctx``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout_s: float = 120.0,
        fallback_n_ctx: int = 4096,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Non-OpenAI endpoints (/props, /tokenize, /extras/…) live at the server root.
        self.root_url = self.base_url.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        headers["Accept-Encoding"] = "identity"  # sizes are capped on the bytes as sent
        self.timeout_s = timeout_s
        self._sockets = ConnectionSockets()  # so that a stalled request can be cut off
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        )
        listed = self._list_models()
        served = [str(m.get("id")) for m in listed if m.get("id")]
        if not served:
            raise BackendUnavailableError(f"server {self.base_url}: lists no models")
        if model is not None and model not in served:
            raise ModelNotFoundError(
                f"model {model!r}: not served by {self.base_url} (it serves {', '.join(served)})"
            )
        self.model = model or served[0]
        meta = next(m for m in listed if m.get("id") == self.model)
        self.flavor: Flavor = self._detect_flavor(meta)
        self._props: dict[str, Any] = {}
        self._n_ctx = self._server_n_ctx(meta) or fallback_n_ctx
        self._token_route: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIBackend:
        """The server named by ``[backend]`` (base_url, api_key, model, timeout_s)."""
        backend = settings.backend
        return cls(
            backend.base_url,
            api_key=backend.api_key,
            model=backend.model,
            timeout_s=backend.timeout_s,
            fallback_n_ctx=settings.model.n_ctx,
        )

    # -- talking to the server -------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"server {self.base_url}: cannot be reached ({type(exc).__name__}); is it running?"
        )

    def _request_json(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, parsed JSON or None) of a plain request, its body capped in size; an
        HTTP error status raises (see ``_raise_for_status``)."""
        trace = {"trace": self._sockets.trace}
        with StallGuard(Deadlines(self.timeout_s), self._sockets) as guard:
            try:
                with self._client.stream(method, url, extensions=trace, **kwargs) as response:
                    self._raise_for_status(response)
                    data = read_capped(response.iter_bytes(), MAX_JSON_BODY_BYTES, url)
            except StreamProblem as exc:
                raise BackendUnavailableError(f"server {self.base_url}: {exc}") from None
            except httpx.TransportError:
                if guard.fired is None:
                    raise
                raise BackendUnavailableError(f"server {self.base_url}: {guard.fired}") from None
        try:
            return response.status_code, json.loads(data)
        except ValueError:
            return response.status_code, None

    def _get_json(self, url: str) -> Any:
        try:
            _, data = self._request_json("GET", url)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if data is None:
            raise BackendUnavailableError(
                f"server {self.base_url}: {url} did not answer JSON (not an OpenAI-compatible API?)"
            )
        return data

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            body = read_capped(response.iter_bytes(), 64 * 1024, "error body")
        except (StreamProblem, httpx.HTTPError):
            body = b""
        detail = _error_detail(body)
        if response.status_code in (401, 403):
            raise BackendUnavailableError(
                f"server {self.base_url}: refused the request (HTTP {response.status_code}; "
                "check backend.api_key)"
            )
        if "context" in detail.lower() and response.status_code == 400:
            raise ContextOverflowError(f"server {self.base_url}: {detail}")
        raise BackendUnavailableError(
            f"server {self.base_url}: HTTP {response.status_code} ({detail or 'no detail'})"
        )

    def _list_models(self) -> list[dict[str, Any]]:
        data = self._get_json(f"{self.base_url}/models")
        items = data.get("data") if isinstance(data, dict) else None
        return [m for m in items or [] if isinstance(m, dict)]

    def _detect_flavor(self, meta: dict[str, Any]) -> Flavor:
        owner = str(meta.get("owned_by", "")).lower()
        if owner == "me":  # llama-cpp-python's server
            return "llama-cpp-python"
        if owner == "vllm":
            return "vllm"
        if owner == "llamacpp" or "meta" in meta:
            return "llama.cpp"
        return "openai"

    def _server_n_ctx(self, meta: dict[str, Any]) -> int | None:
        if self.flavor == "llama.cpp":
            try:
                props = self._request_json("GET", f"{self.root_url}/props")[1]
            except (httpx.HTTPError, ChatappError):
                props = None
            self._props = props if isinstance(props, dict) else {}
        settings = self._props.get("default_generation_settings")
        inner = meta.get("meta")
        for value in (
            meta.get("max_model_len"),  # vLLM
            settings.get("n_ctx") if isinstance(settings, dict) else None,
            self._props.get("n_ctx"),
            inner.get("n_ctx_train") if isinstance(inner, dict) else None,
        ):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return min(value, _MAX_N_CTX)
        return None

    # -- Backend protocol ------------------------------------------------------------------

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(name=self.model, backend="openai", path=self.base_url)

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def thinking(self) -> ThinkingSupport:
        """From the served model's chat template where the server shows it (llama.cpp's
        ``/props``); other servers keep it to themselves, so this then says "no" even for a
        model that thinks (its thinking still streams apart)."""
        source = self._props.get("chat_template")
        if not isinstance(source, str) or not source:
            return NO_THINKING
        from chatapp.engine.chat_formats import ChatTemplate

        try:
            return ChatTemplate(source=source, name="gguf").thinking
        except Exception:  # a template our renderer cannot parse tells us nothing
            return NO_THINKING

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``: exact on llama.cpp (``POST /tokenize``) and llama-cpp-python
        (``POST /extras/tokenize/count``) servers; elsewhere an estimate of one token per four
        characters, since the OpenAI API has no tokenizer endpoint."""
        if not text:
            return 0
        routes = {"llama.cpp": "/tokenize", "llama-cpp-python": "/extras/tokenize/count"}
        route = routes.get(self.flavor)
        if route is not None:
            try:
                body = {"content": text} if route == "/tokenize" else {"input": text}
                status, data = self._request_json("POST", f"{self.root_url}{route}", json=body)
                if status == 200 and isinstance(data, dict):
                    return int(data["count"]) if "count" in data else len(data["tokens"])
            except (httpx.HTTPError, ChatappError, ValueError, KeyError, TypeError):
                pass
        return math.ceil(len(text) / _CHARS_PER_TOKEN)

    def count_chat_tokens(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> int:
        """The server applies the chat template, so this is the messages' tokens plus a few per
        turn for the template's markers: close, not exact."""
        text = "\n".join(m.content + str(wire_message(m).get("tool_calls", "")) for m in messages)
        text += str(tool_fields(params)) if params is not None else ""  # the tools' schemas
        return self.count_tokens(text) + _PER_MESSAGE_TOKENS * len(messages) + 3

    def format_chat(
        self, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> str:
        """The prompt as llama.cpp's server renders it (``POST /apply-template``); other servers
        keep their template to themselves, so this is then a plain ``role: text`` transcript."""
        if self.flavor == "llama.cpp":
            try:
                body: dict[str, Any] = {
                    "messages": [defuse_message(wire_message(m)) for m in messages]
                }
                body.update(tool_fields(params) if params is not None else {})
                kwargs = template_kwargs(params) if params is not None else {}
                if kwargs:
                    body["chat_template_kwargs"] = kwargs
                status, data = self._request_json(
                    "POST", f"{self.root_url}/apply-template", json=body
                )
                if status == 200 and isinstance(data, dict):
                    return str(data["prompt"])
            except (httpx.HTTPError, ChatappError, ValueError, KeyError):
                pass
        return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant: "

    def request_body(self, messages: Sequence[ChatMessage], params: GenerationParams) -> dict:
        """The JSON sent to ``/chat/completions`` for these messages and settings."""
        return chat_request_body(self.model, self.flavor, messages, params)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cancel: CancelToken | None = None,
    ) -> Iterator[StreamEvent]:
        """The reply as events. Nothing the server sends is trusted (see ``openai_stream``): a
        malformed chunk, an overlong line or a stalled stream raises BackendUnavailableError
        (the session stores the reply so far as failed); more than ``params.max_tokens``
        chunks end the reply here with ``length``."""
        body = self.request_body(messages, params)
        clock = ReplyClock()
        finish = "stop"
        error: str | None = None
        usage: Usage | None = None
        splitter = ReasoningSplitter(THINK)  # for servers that leave <think> in the text
        limits = ReplyLimits(params.max_tokens)
        calls = ToolCallAssembler(params.tools)  # streamed tool_calls deltas, by index
        deadlines = Deadlines(self.timeout_s)
        ended = False
        guard = StallGuard(deadlines, self._sockets)
        try:
            with (
                guard,
                self._client.stream(
                    "POST",
                    f"{self.base_url}/chat/completions",
                    json=body,
                    extensions={"trace": self._sockets.trace},
                ) as response,
            ):
                self._raise_for_status(response)
                lines = sse_lines(response.iter_bytes(), deadlines)
                for payload in sse_payloads(lines):
                    if cancel is not None and cancel.cancelled:
                        finish = "cancelled"
                        break  # leaving the block closes the connection; the server stops
                    if payload is None:
                        ended = True
                        break
                    chunk, more = limits.admit(parse_chunk(payload))
                    usage = chunk.usage or usage
                    if not more:  # our own token limit: the server sent more than was asked
                        finish, ended = "length", True
                    deltas = tool_deltas(payload)
                    calls.feed(deltas)
                    if chunk.text or chunk.thought or deltas:
                        deadlines.progressed()
                        clock.arrived()
                    if chunk.thought:
                        clock.thought()
                        yield ReasoningEvent(chunk.thought)
                    for piece in splitter.feed(chunk.text) if chunk.text else ():
                        if isinstance(piece, ReasoningEvent):
                            clock.thought()
                        else:
                            clock.answered()
                        yield piece
                    if chunk.finish_reason is not None:
                        ended = True
                        finish = "length" if chunk.finish_reason == "length" else finish
                    if not more:
                        break
                if cancel is not None and cancel.cancelled:
                    finish = "cancelled"
        except httpx.TransportError as exc:
            if guard.fired is not None:
                raise BackendUnavailableError(f"server {self.base_url}: {guard.fired}") from None
            if isinstance(exc, httpx.ReadTimeout):
                raise BackendUnavailableError(
                    f"server {self.base_url}: sent nothing for {self.timeout_s:g} s "
                    "(backend.timeout_s)"
                ) from None
            if clock.first_at is None:
                raise self._unreachable(exc) from None
            finish, error = "error", f"server {self.base_url}: connection lost mid-reply"
            ended = True
        except StreamProblem as exc:
            raise BackendUnavailableError(f"server {self.base_url}: {exc}") from None
        except ServerReportedError as exc:
            raise BackendUnavailableError(f"server error mid-reply: {exc}") from None
        if guard.fired is not None and not ended:
            raise BackendUnavailableError(f"server {self.base_url}: {guard.fired}")
        if not ended and finish != "cancelled":
            raise BackendUnavailableError(
                f"server {self.base_url}: the reply stream ended without its end marker "
                "(no finish_reason, no [DONE])"
            )
        yield from splitter.flush()
        yield from (ToolCallEvent(call) for call in calls.calls())
        finish = "tool_calls" if calls and finish == "stop" else finish
        stats = clock.stats(
            self.n_ctx, usage, limits.chunks, lambda: self.count_chat_tokens(messages)
        )
        yield DoneEvent(stats=stats, finish_reason=finish, error=error)  # type: ignore[arg-type]

    def close(self) -> None:
        self._client.close()


def _error_detail(body: bytes) -> str:
    """The message of an error response, on one line (printing escapes it for a terminal)."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return one_line(text.strip().splitlines()[0], 200) if text.strip() else ""
    error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message", error)
    return one_line(str(error))

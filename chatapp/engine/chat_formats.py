"""Chat templates: turn a list of messages into the exact prompt text a model was trained on.

A GGUF usually carries its own Jinja2 template (``tokenizer.chat_template``); it is rendered the
way Hugging Face transformers renders it (sandboxed Jinja2, ``trim_blocks``/``lstrip_blocks``,
``raise_exception``, ``strftime_now``, bos/eos tokens from the vocabulary, ``tools`` and
``documents`` passed as None, an assistant turn's reasoning as ``reasoning_content`` and
``thinking``). When a model has no template, or its template fails on a simple conversation, a
fallback is chosen by architecture and name (chatml, llama3, gemma, phi, mistral) and a warning
is logged. A template runs within limits on time and memory (``template_limits``): one over them
is treated like one that fails. ``ChatTemplate.thinking`` says whether the model thinks and which template variable
switches it; extra variables (``enable_thinking``…) are passed to ``render``. Control-token
texts inside messages can be marked (``control_tokens``) so the tokenizer reads them as plain
text. No llama.cpp import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.meta

from chatapp.domain import ChatMessage
from chatapp.engine.chat_families import FALLBACK_TEMPLATES, FAMILY_TOKENS, family_for
from chatapp.engine.control_tokens import ControlTokens
from chatapp.engine.reasoning import (
    NO_THINKING,
    ReasoningFormat,
    ThinkingSupport,
    detect_reasoning_format,
)
from chatapp.engine.template_limits import LimitedSandbox, TemplateLimitError, render_limited
from chatapp.terminal_text import safe_for_terminal

log = logging.getLogger(__name__)

# End-of-turn markers of the common templates; any that a template mentions stops generation.
END_OF_TURN_MARKERS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endofturn|>",
    "[|endofturn|]",
    "<|end_of_text|>",
    "<|return|>",
    "<turn|>",
)
# Template variables that switch thinking on and off, and the efforts gpt-oss-style templates take.
THINKING_SWITCHES = ("enable_thinking", "thinking")
REASONING_EFFORTS = ("low", "medium", "high")

SAMPLE_CONVERSATION = (
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "Hello! 안녕하세요?"),
    ChatMessage("assistant", "Hi! How can I help?"),
    ChatMessage("user", "Name three colours."),
)


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    # transformers renders tojson without escaping non-ASCII (Korean stays Korean).
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


class _IgnoreGenerationTags(jinja2.ext.Extension):
    """Pass-through for transformers' ``{% generation %}`` tag used by some templates."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 reads this class attribute

    def parse(self, parser: Any) -> Any:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    env = LimitedSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_IgnoreGenerationTags, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


@dataclass
class ChatTemplate:
    """A compiled chat template with the special tokens it is rendered with."""

    source: str
    name: str
    """``gguf`` for the model's own template, else the fallback family."""
    bos_token: str = ""
    eos_token: str = ""
    end_of_turn: list[str] = field(default_factory=list)
    """Texts that end the assistant's turn; generation stops on them."""
    merge_system: bool = False
    """The template rejects a system role: the system text is put in the first user turn."""
    fallback_family: str = "chatml"
    """The built-in family to use for a chat this template cannot render."""
    vocabulary: frozenset[str] = frozenset()
    """The vocabulary's special and added tokens (to recognise thinking markers)."""
    control_tokens: ControlTokens | None = None
    """When set, control-token texts inside messages are marked (see control_tokens.py)."""

    def render(
        self,
        messages: Sequence[ChatMessage],
        add_generation_prompt: bool = True,
        variables: Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The prompt text for ``messages``; raises jinja2.TemplateError when the template fails.
        ``variables`` go to the template as they are (``enable_thinking``, ``reasoning_effort``);
        ``tools``: the OpenAI ``tools`` entries the template describes to the model."""
        items = [m.to_dict() for m in messages]
        if self.merge_system:
            items = merge_system_into_user(items)
        tool_items = list(tools) if tools else None
        if self.control_tokens:
            items = [self.control_tokens.mark_message(item) for item in items]
            if tool_items:
                tool_items = self.control_tokens.mark_value(tool_items)
        return render_limited(
            _compile(self.source),
            self.source,
            sum(
                len(str(item.get("content") or "")) + len(str(item.get("tool_calls") or ""))
                for item in items
            )
            + len(str(tool_items or "")),
            **(variables or {}),
            messages=items,
            tools=tool_items,
            documents=None,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            add_generation_prompt=add_generation_prompt,
        )

    def generation_prompt(
        self,
        messages: Sequence[ChatMessage],
        variables: Mapping[str, Any] | None = None,
        full: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """What the template adds after the chat to start the reply (``<|im_start|>assistant\n``,
        DeepSeek-R1's ``<｜Assistant｜><think>\n``): where the reply begins. ``full``: the chat
        already rendered with its generation prompt."""
        if full is None:
            full = self.render(messages, True, variables, tools)
        try:
            bare = self.render(messages, False, variables, tools)
        except Exception:  # some templates insist on a generation prompt
            return full[-200:]
        common = 0
        for a, b in zip(full, bare, strict=False):
            if a != b:
                break
            common += 1
        return full[common:]

    @cached_property
    def variables(self) -> frozenset[str]:
        """The variables the template reads from its caller."""
        env = _compile(self.source).environment
        return frozenset(jinja2.meta.find_undeclared_variables(env.parse(self.source)))

    @cached_property
    def reasoning_format(self) -> ReasoningFormat | None:
        return detect_reasoning_format(self.source, self.vocabulary)

    @cached_property
    def thinking(self) -> ThinkingSupport:
        """Whether the model thinks, and what of it the template lets a caller set."""
        fmt = self.reasoning_format
        if fmt is None:
            return NO_THINKING
        switch = next((v for v in THINKING_SWITCHES if v in self.variables), None)
        efforts = REASONING_EFFORTS if "reasoning_effort" in self.variables else ()
        sample = SAMPLE_CONVERSATION[1:2]  # no system prompt: some templates add their own
        default_on = True
        try:
            if switch is not None:
                plain, on = self.render(sample), self.render(sample, variables={switch: True})
                default_on = plain == on
                if on == self.render(sample, variables={switch: False}):
                    switch = None  # the variable changes nothing
            if switch is None:
                default_on = fmt.style == "harmony" or fmt.open in self.generation_prompt(sample)
        except Exception:
            switch = None
        return ThinkingSupport(format=fmt, switch=switch, default_on=default_on, efforts=efforts)

    def is_prefix_stable(self) -> bool:
        """Whether earlier turns render byte-identically when the conversation grows, so the
        next turn can reuse the KV cache instead of evaluating the whole history again."""
        first = self.render(SAMPLE_CONVERSATION[:2])
        second = self.render(SAMPLE_CONVERSATION)
        return second.startswith(first)


def merge_system_into_user(items: list[dict[str, str]]) -> list[dict[str, str]]:
    """Fold system messages into the next user message (for templates without a system role)."""
    out: list[dict[str, str]] = []
    pending = ""
    for item in items:
        if item["role"] == "system":
            pending += item["content"] + "\n\n"
        elif item["role"] == "user" and pending:
            out.append({**item, "content": pending + item["content"]})
            pending = ""
        else:
            out.append(item)
    if pending:
        out.append({"role": "user", "content": pending.rstrip("\n")})
    return out


def merge_consecutive_roles(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Join back-to-back messages of the same role (many templates insist that user and
    assistant alternate; a reply that failed leaves two user turns in a row)."""
    out: list[ChatMessage] = []
    for message in messages:
        if out and out[-1].role == message.role:
            before = out[-1]
            reasoning = message.reasoning if message.reasoning is not None else before.reasoning
            joined = f"{before.content}\n\n{message.content}"
            out[-1] = ChatMessage(message.role, joined, reasoning)
        else:
            out.append(message)
    return out


def resolve_chat(
    template: ChatTemplate,
    messages: Sequence[ChatMessage],
    variables: Mapping[str, Any] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[ChatTemplate, list[ChatMessage], str]:
    """(template, messages, prompt) of a chat: the template as is; else with same-role
    neighbours merged; else (the model's own template failing on this chat) its fallback
    family, with a logged warning. Raises when a built-in template fails. ``tools`` go to the
    model's own template only (the fallback families describe none)."""
    chat = list(messages)
    try:
        return template, chat, template.render(chat, variables=variables, tools=tools)
    except Exception as exc:
        problem = exc
    merged = merge_consecutive_roles(chat)
    if len(merged) != len(chat):
        try:
            return template, merged, template.render(merged, variables=variables, tools=tools)
        except Exception as exc:
            problem = exc
    if template.name != "gguf":
        raise problem
    log.warning(  # the problem can quote the template: shown escaped
        "chat template fails on this chat (%s); using the %s format for it",
        safe_for_terminal(str(problem)),
        template.fallback_family,
    )
    fallback = fallback_template(
        template.fallback_family,
        template.bos_token or None,
        template.eos_token or None,
        vocabulary=template.vocabulary,
    )
    fallback.control_tokens = template.control_tokens
    return fallback, merged, fallback.render(merged, variables=variables)


def render_chat(
    template: ChatTemplate,
    messages: Sequence[ChatMessage],
    variables: Mapping[str, Any] | None = None,
) -> str:
    """The prompt for ``messages`` (see ``resolve_chat`` for what renders it)."""
    return resolve_chat(template, messages, variables)[2]


def end_of_turn_markers(source: str, eos_token: str | None) -> list[str]:
    """The end-of-turn texts a template uses (and the model's eos token). In the harmony
    format (gpt-oss) ``<|end|>`` only ends the thinking part of a reply, never the reply."""
    markers = [m for m in END_OF_TURN_MARKERS if m in source]
    if "<|channel|>" in source and "<|return|>" in source:
        markers = [m for m in markers if m != "<|end|>"]
        markers += [m for m in ("<|call|>",) if m in source]
    if eos_token and eos_token not in markers:
        markers.append(eos_token)
    return markers


def fallback_template(
    family: str,
    bos_token: str | None = None,
    eos_token: str | None = None,
    *,
    vocabulary: Iterable[str] = (),
) -> ChatTemplate:
    """One of the built-in templates; special tokens default to the family's usual ones."""
    if family not in FALLBACK_TEMPLATES:
        raise ValueError(f"unknown chat template family {family!r}")
    bos, eos, eot = FAMILY_TOKENS[family]
    markers = [eot] + ([eos_token] if eos_token and eos_token != eot else [])
    return ChatTemplate(
        source=FALLBACK_TEMPLATES[family],
        name=family,
        bos_token=bos_token if bos_token is not None else bos,
        eos_token=eos_token or eos,
        end_of_turn=markers,
        vocabulary=frozenset(vocabulary),
    )


def _works(template: ChatTemplate) -> bool:
    """Whether the template renders a small conversation with every user text in it."""
    text = template.render(SAMPLE_CONVERSATION)
    return all(m.content in text for m in SAMPLE_CONVERSATION if m.role == "user")


def select_template(
    gguf_template: str | None,
    *,
    architecture: str | None,
    name: str | None = None,
    bos_token: str | None = None,
    eos_token: str | None = None,
    vocab_size: int | None = None,
    vocabulary: Collection[str] = (),
) -> ChatTemplate:
    """The model's own template when it renders; otherwise the architecture's fallback, with a
    logged warning saying why. ``vocabulary``: the special and added tokens' texts."""
    problem = "the model file has no chat template"
    if gguf_template:
        own = ChatTemplate(
            source=gguf_template,
            name="gguf",
            bos_token=bos_token or "",
            eos_token=eos_token or "",
            end_of_turn=end_of_turn_markers(gguf_template, eos_token),
            fallback_family=family_for(architecture, name, vocab_size),
            vocabulary=frozenset(vocabulary),
        )
        for merge in (False, True):
            own.merge_system = merge
            try:
                if _works(own):
                    return own
                problem = "its chat template drops user messages"
            except TemplateLimitError as exc:
                problem = f"its chat template is over the render limits ({exc})"
                break
            except Exception as exc:  # any template bug: TemplateError, TypeError, KeyError…
                problem = f"its chat template fails to render ({exc})"
    family = family_for(architecture, name, vocab_size)
    log.warning(  # the name and the problem come from the model file: shown escaped
        "model %s: %s; using the %s chat format instead",
        safe_for_terminal(str(name or architecture)),
        safe_for_terminal(problem),
        family,
    )
    return fallback_template(family, bos_token or None, eos_token or None, vocabulary=vocabulary)

"""Chat templates: turn a list of messages into the exact prompt text a model was trained on.

A GGUF usually carries its own Jinja2 template (``tokenizer.chat_template``); it is rendered the
way Hugging Face transformers renders it (sandboxed Jinja2, ``trim_blocks``/``lstrip_blocks``,
``raise_exception``, ``strftime_now``, bos/eos tokens from the vocabulary). When a model has no
template, or its template fails on a simple conversation, a fallback is chosen by architecture
and name (chatml, llama3, gemma, phi, mistral) and a warning is logged. No llama.cpp import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from chatapp.domain import ChatMessage

log = logging.getLogger(__name__)

FAMILIES = ("chatml", "llama3", "gemma", "phi", "mistral")

FALLBACK_TEMPLATES: dict[str, str] = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
        "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
        "{% endif %}"
    ),
    # Gemma has no system role: the system text opens the first user turn.
    "gemma": (
        "{{ bos_token }}{% set ns = namespace(system='') %}"
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{% set ns.system = ns.system + m['content'] + '\n\n' %}{% else %}"
        "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
        "{% if m['role'] == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
        "{{ m['content'] | trim }}<end_of_turn>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
    "phi": (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    # Mistral instruct (v0.1-v0.3 style): the system text opens the first user turn.
    "mistral": (
        "{{ bos_token }}{% set ns = namespace(system='') %}"
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{% set ns.system = ns.system + m['content'] + '\n\n' %}"
        "{% elif m['role'] == 'user' %}[INST] {{ ns.system }}{{ m['content'] }} [/INST]"
        "{% set ns.system = '' %}{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}"
        "{% endfor %}"
    ),
}

FAMILY_TOKENS: dict[str, tuple[str, str, str]] = {
    # family -> (bos, eos, end-of-turn) used when the vocabulary does not name them
    "chatml": ("", "<|im_end|>", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"),
    "gemma": ("<bos>", "<eos>", "<end_of_turn>"),
    "phi": ("<s>", "<|endoftext|>", "<|end|>"),
    "mistral": ("<s>", "</s>", "</s>"),
}

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
)

SAMPLE_CONVERSATION = (
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "Hello! 안녕하세요?"),
    ChatMessage("assistant", "Hi! How can I help?"),
    ChatMessage("user", "Name three colours."),
)


def family_for(
    architecture: str | None, name: str | None = None, vocab_size: int | None = None
) -> str:
    """The fallback template family for a model's GGUF architecture and name."""
    arch = (architecture or "").lower()
    label = (name or "").lower().replace("_", "-").replace(" ", "-")
    if arch.startswith("gemma"):
        return "gemma"
    if arch.startswith("phi"):
        return "phi"
    if arch in ("mistral", "mistral3") or "mistral" in label or "mixtral" in label:
        return "mistral"
    if arch.startswith("qwen") or "qwen" in label or "smollm" in label:
        return "chatml"
    if arch == "llama":
        if "llama-3" in label or "llama3" in label or (vocab_size or 0) >= 128_000:
            return "llama3"
        if "llama-2" in label or "llama2" in label:
            return "mistral"  # Llama 2 chat uses the same [INST] turns
    return "chatml"


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
    env = ImmutableSandboxedEnvironment(
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

    def render(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages``; raises jinja2.TemplateError when the template fails."""
        items = [m.to_dict() for m in messages]
        if self.merge_system:
            items = merge_system_into_user(items)
        return _compile(self.source).render(
            messages=items,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            add_generation_prompt=add_generation_prompt,
        )

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
            out.append({"role": "user", "content": pending + item["content"]})
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
            out[-1] = ChatMessage(message.role, f"{out[-1].content}\n\n{message.content}")
        else:
            out.append(message)
    return out


def render_chat(template: ChatTemplate, messages: Sequence[ChatMessage]) -> str:
    """The prompt for ``messages``: with the template as is; else with same-role neighbours
    merged; else (the model's own template failing on this chat) with its fallback family."""
    try:
        return template.render(messages)
    except Exception as exc:
        problem = exc
    merged = merge_consecutive_roles(messages)
    if len(merged) != len(messages):
        try:
            return template.render(merged)
        except Exception as exc:
            problem = exc
    if template.name != "gguf":
        raise problem
    log.warning(
        "chat template fails on this chat (%s); using the %s format for it",
        problem,
        template.fallback_family,
    )
    fallback = fallback_template(
        template.fallback_family, template.bos_token or None, template.eos_token or None
    )
    return fallback.render(merged)


def end_of_turn_markers(source: str, eos_token: str | None) -> list[str]:
    """The end-of-turn texts a template uses (and the model's eos token)."""
    markers = [m for m in END_OF_TURN_MARKERS if m in source]
    if eos_token and eos_token not in markers:
        markers.append(eos_token)
    return markers


def fallback_template(
    family: str, bos_token: str | None = None, eos_token: str | None = None
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
) -> ChatTemplate:
    """The model's own template when it renders; otherwise the architecture's fallback, with a
    logged warning saying why."""
    problem = "the model file has no chat template"
    if gguf_template:
        own = ChatTemplate(
            source=gguf_template,
            name="gguf",
            bos_token=bos_token or "",
            eos_token=eos_token or "",
            end_of_turn=end_of_turn_markers(gguf_template, eos_token),
            fallback_family=family_for(architecture, name, vocab_size),
        )
        for merge in (False, True):
            own.merge_system = merge
            try:
                if _works(own):
                    return own
                problem = "its chat template drops user messages"
            except Exception as exc:  # any template bug: TemplateError, TypeError, KeyError…
                problem = f"its chat template fails to render ({exc})"
    family = family_for(architecture, name, vocab_size)
    log.warning(
        "model %s: %s; using the %s chat format instead", name or architecture, problem, family
    )
    return fallback_template(family, bos_token or None, eos_token or None)
